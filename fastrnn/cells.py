"""Recurrent cells: the public, validated face of the kernels and their reference twins.

A cell owns its parameters and calls either :mod:`fastrnn.kernels` (``backend="numba"``) or
:mod:`fastrnn.reference` (``backend="numpy"``); both have the same functions and signatures::

    forward_into(x, *state, *params, *options, y, *final_state, *tape)
    backward_into(x, *params, *options, *tape, dy, *dfinal_state, truncate, *param_grads, dx, *dstate)

(the ``_into`` forms: arrays allocated here by NumPy are cheaper than arrays returned by Numba).
"""

import importlib
import math
from operator import is_, itemgetter

import numpy as np

from . import _dilation
from . import _validation as v
from ._params import Parameters
from ._threads import steps_may_split
from ._workspace import LARGE, Outputs, Workspace
from .compilation import first_call
from .kernels import steps
from .kernels._driver import STEP_WORK
from .kernels._gemm import MR
from .kernels._jit import entry_point
from .kernels.checks import all_finite, all_finite_in
from .layer import MAX_SIZE, DescriptionError, Layer, is_size

BACKENDS = {"numba": "fastrnn.kernels", "numpy": "fastrnn.reference"}

class Tape:
    """What :meth:`Cell.backward` needs from a forward call. Opaque; bound to the cell that made it."""

    __slots__ = ("owner", "x", "arrays", "key")

    def __init__(self, owner, x, arrays):
        self.owner = owner
        self.x = x
        self.arrays = arrays
        # x's shape as forward saw it: the tape's arrays are sized by it, and a shape set on x in
        # place since then must not reach a kernel.
        self.key = x.shape

    @property
    def shape(self):
        """(T, B) of the sequence this tape recorded."""
        return self.key[:2]

    def __repr__(self):
        T, B = self.shape
        return f"<Tape of {type(self.owner).__name__} T={T} B={B}>"


class _Plan:
    """What a cell's call over one (T, B) writes and reads.

    ``forward`` and ``backward`` are the :class:`fastrnn._workspace.Outputs` of the two kernels,
    in their argument order: forward's y, the final state parts and the tape; backward's the
    parameter gradients (placeholders included), dx and the initial state parts.
    ``small`` is whether every array of either call is too small for the workspace, ``zeros``
    the zero state of B rows.
    """

    __slots__ = ("forward", "backward", "small", "zeros")

    def __init__(self, forward, backward, small, zeros):
        self.forward, self.backward, self.small, self.zeros = forward, backward, small, zeros


class _Checked:
    """What the last check of a cell's parameters found (see :meth:`Cell._checked_params`).

    ``arrays`` are the kernels' parameter arguments in order: the cell's own views of the arrays
    in ``params`` (placeholders for absent ones), ``middle`` those followed by the options;
    ``present`` the checked arrays of ``params`` themselves; ``seen`` and ``version`` the
    :class:`fastrnn._params.Parameters` they came from and its version then (None, None for any
    other mapping, or for arrays a call cannot skip Numba's typing with, see :data:`_PLAIN`).
    """

    __slots__ = ("arrays", "middle", "present", "seen", "version")

    def __init__(self, arrays, middle, present, seen, version):
        self.arrays, self.middle, self.present, self.seen, self.version = arrays, middle, present, seen, version


#: A plain array's flags (:data:`fastrnn._validation.PLAIN`): what Numba types as a C-contiguous,
#: aligned, mutable array. A call repeated with such inputs has the argument types of the call it
#: repeats, whose compiled code it can then run directly.
_PLAIN = v.PLAIN


class _Repeat:
    """A call over one input shape that the cell has made, ready to be made again (see
    :meth:`Cell.forward`): its ``plan``, and the compiled code that ran for exactly its argument
    types, taken from Numba's dispatchers: ``kernel``, and the finiteness checks of its input
    (x, or dy of shape ``dy_shape``) alone, ``finite``, and with the state parts, ``finite_with``."""

    __slots__ = ("plan", "kernel", "finite", "finite_with", "dy_shape", "state_shape")

    def __init__(self, plan, kernel, finite, finite_with, dy_shape):
        self.plan, self.kernel, self.dy_shape = plan, kernel, dy_shape
        self.state_shape = plan.zeros[0].shape if len(plan.zeros) == 1 else None
        self.finite, self.finite_with = finite, finite_with


class Cell(Layer):
    """Base class of every cell: parameters, validation, and dispatch to a backend.

    Subclasses set ``_module`` (the kernel/reference module name), ``_forget_blocks`` (blocks
    whose ``bias_ih`` starts at 1.0) and ``_described`` (constructor options a description
    records), and may override ``shapes_for`` and ``_options``. The rest of a cell's layout (gate
    blocks, state parts, tape) is read from its step module, :mod:`fastrnn.kernels.steps`.<cell>,
    where the step math that decides it lives.
    """

    abstract_kind = True
    _module = None
    _described = ()
    _forget_blocks = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._steps = getattr(steps, cls._module)
        cls._blocks = cls._steps.GATES
        cls._state_names = cls._steps.STATES

    def __init__(self, input_size, hidden_size, *, dtype="float64", seed=None, backend="numba"):
        self.input_size = v.check_positive_int("input_size", input_size)
        self.hidden_size = v.check_positive_int("hidden_size", hidden_size)
        self.dtype = v.check_dtype(dtype)
        self.backend = v.check_choice("backend", backend, tuple(BACKENDS))
        self._impl = importlib.import_module(f"{BACKENDS[backend]}.{self._module}")
        self._shapes = self._param_shapes()
        # (name, shape, placeholder): the kernels' parameter arguments in order, derived once; a
        # placeholder (an empty array, never written) stands for a parameter absent here.
        self._layout = tuple((name, shape, None if self._present(shape) else np.empty(shape, self.dtype))
                             for name, shape in self._shapes.items())
        self.params = self._init_params(np.random.default_rng(seed))
        # A numba cell's first forward and first backward go through compilation.first_call,
        # which says when a kernel has to be compiled.
        # name -> (kernel, name), looked up per call (a formatted attribute name cost ~0.1 µs a call).
        self._kernels = {name: (getattr(self._impl, attribute), name) for name, attribute in (
            ("forward", "forward_into"), ("backward", "backward_into"),
            ("forward threaded", "forward_into_threaded"), ("backward threaded", "backward_into_threaded"))
            if hasattr(self._impl, attribute)}
        self._fresh = set(self._kernels) if backend == "numba" else set()
        # A step's hidden-side product in multiply-adds times bytes per batch row: from STEP_WORK in
        # all, and with room for two chunks of MR rows, a call goes to the kernels' threaded twins.
        self._step_work = self._blocks * self.hidden_size ** 2 * self.dtype.itemsize if backend == "numba" else 0
        # The output, tape and dx of a call are written into those of an earlier call once nothing
        # refers to them any more (fastrnn._workspace: fresh pages cost a third of a large forward).
        self._workspace = Workspace()
        # What the last check of the parameters found (see _checked_params): at 8x1x2x16 a check
        # done afresh costs 0.9 µs in a plain loop, half the forward kernel's time.
        self._checked = None
        # Input shape -> _Repeat: calls made before, which the next call of the same shape repeats
        # with only the checks whose outcome can have changed (see forward).
        self._repeat_forward, self._repeat_backward = {}, {}
        self._n_states = len(self._state_names)
        self._names = tuple(self._shapes)
        names = [name for name, _, placeholder in self._layout if placeholder is None]
        self._present_params = itemgetter(*names) if len(names) > 1 else lambda params: (params[names[0]],)
        self._plans = {}
        self._all_present = all(placeholder is None for _, _, placeholder in self._layout)
        # B -> zero states for B rows. A state is an input the kernels and the reference only read,
        # so one set serves every call that omits state or dstate (and is never handed out).
        self._zeros = {}

    def _what(self, direction):
        return f"{type(self).__name__} {self.dtype.name} {direction}"

    def _kernel(self, direction, batch):
        """(kernel, name) for a ``direction`` call over ``batch`` rows: the threaded twin
        (``forward_into_threaded``) when its steps are large enough to share out and more than one
        thread is allowed (checked last: the sizes rule out small calls at no cost), else the kernel."""
        if batch >= 2 * MR and batch * self._step_work >= STEP_WORK and steps_may_split():
            return self._kernels[direction + " threaded"]
        return self._kernels[direction]

    def _call(self, direction, batch, args):
        """Run the ``direction`` kernel for ``batch`` rows on ``args``; its first use goes through
        :func:`fastrnn.compilation.first_call`, which says when it has to compile."""
        # Fewer than 2 MR rows never go to the threaded twin: settled without another call.
        kernel, name = self._kernel(direction, batch) if batch >= 2 * MR else self._kernels[direction]
        if name in self._fresh:
            first_call(kernel, args, self._what(name))
            self._fresh.discard(name)
        else:
            kernel(*args)

    # -- layout -------------------------------------------------------------------------------

    def _param_shapes(self):
        return self.shapes_for(self.input_size, self.hidden_size)

    @classmethod
    def shapes_for(cls, input_size, hidden_size):
        """The shape of each parameter of a cell of these sizes, computed without allocating
        anything (a zero-size shape marks a parameter absent in this configuration)."""
        G, H, I = cls._blocks * hidden_size, hidden_size, input_size
        return {"weight_ih": (G, I), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,)}

    def _options(self):
        return ()

    def _plan(self, T, B):
        """What a call over (T, B) writes and reads, worked out once and remembered for the last
        few (T, B): a :class:`_Plan`."""
        plan = self._plans.get((T, B))
        if plan is None:
            states = ((B, self.hidden_size),) * len(self._state_names)
            forward = ((T, B, self.output_size), *states, *self._tape_shapes(T, B))
            backward = (*self._shapes.values(), (T, B, self.input_size), *states)
            small = max(math.prod(shape) for shape in forward + backward) * self.dtype.itemsize < LARGE
            if len(self._plans) >= 16:
                self._plans.clear()
            plan = self._plans[T, B] = _Plan(Outputs(forward, self.dtype), Outputs(backward, self.dtype),
                                             small, self._zero_states(B))
        return plan

    def _tape_shapes(self, T, B):
        """Shapes of the tape arrays that forward fills, from the step module's TAPE."""
        return steps.tape_shapes(self._steps, T, B, self.hidden_size)

    def _init_params(self, rng):
        # PyTorch's rule: U(-1/sqrt(H), 1/sqrt(H)) for everything. Drawn in float64 and then
        # cast, so float32 and float64 cells with one seed start from the same numbers.
        bound = 1.0 / math.sqrt(self.hidden_size)
        params = Parameters((name, rng.uniform(-bound, bound, size=shape).astype(self.dtype))
                            for name, shape in self._shapes.items() if self._present(shape))
        H = self.hidden_size
        for block in self._forget_blocks:
            params["bias_ih"][block * H:(block + 1) * H] = 1.0
        return params

    @property
    def output_size(self):
        """Feature size of the per-step output y."""
        return self.hidden_size

    @staticmethod
    def _present(shape):
        # A zero-size shape marks a parameter the cell does not have in this configuration (+RNN's
        # weight_in when input_size == hidden_size): the kernels get an empty array in its place.
        return 0 not in shape

    def _param_list(self):
        """The kernels' parameter arguments in their order, each checked (the arrays are live:
        the user may have replaced one); an absent parameter is an empty placeholder."""
        return self._checked_params().arrays

    def _checked_params(self):
        """The parameters checked now: a :class:`_Checked`.

        The kernels get views of the arrays in ``params`` that the cell makes and keeps to itself.
        A view shares its array's memory, so values written into a parameter reach the kernels, but
        nothing done to the array object (its ``shape`` or ``dtype`` set in place) changes a view:
        once an array is checked, its views stay valid for as long as ``params`` holds it. So the
        arrays are checked again only when ``params`` may hold others: when Parameters' version
        has moved, or, for any other mapping, when a lookup finds another array object.
        """
        params, checked = self.params, self._checked
        if checked is not None:
            if params is checked.seen and params.version == checked.version:
                return checked
            try:  # a C-level map over the present parameters
                same = all(map(is_, self._present_params(params), checked.present))
            except (KeyError, TypeError):  # a parameter deleted, or params no longer a mapping
                same = False
            if same:
                checked.seen, checked.version = self._seen(params, checked.arrays)
                return checked
        dtype = self.dtype
        arrays = []
        for name, shape, placeholder in self._layout:
            if placeholder is not None:
                arrays.append(placeholder)
                continue
            array = params.get(name)
            # The common case in a few attribute reads; check_param words the error.
            if type(array) is not np.ndarray or array.shape != shape or array.dtype != dtype \
                    or not array.flags.c_contiguous:
                v.check_param(name, array, dtype, shape)
            arrays.append(array)
        present = tuple(array for array, (_, _, placeholder) in zip(arrays, self._layout) if placeholder is None)
        views = tuple(array if placeholder is not None else array.view()
                      for array, (_, _, placeholder) in zip(arrays, self._layout))
        self._checked = _Checked(views, (*views, *self._options()), present, *self._seen(params, views))
        return self._checked

    @staticmethod
    def _seen(params, views):
        """(the dict, its version) for Parameters, whose version tells when it changes; (None, None)
        for any other mapping, which is looked up at every call, or when a view is not
        :data:`_PLAIN` (a read-only or unaligned parameter), which keeps calls from being repeated
        without Numba's typing."""
        if type(params) is Parameters and all(view.flags.num & _PLAIN == _PLAIN for view in views):
            return params, params.version
        return None, None

    # -- state handling -----------------------------------------------------------------------

    def _states(self, name, state, batch):
        """Validate a state (an array, or a tuple for multi-array states) into a list of arrays."""
        n = len(self._state_names)
        shape = (batch, self.hidden_size)
        if state is None:
            return [np.zeros(shape, self.dtype) for _ in range(n)]
        if n == 1:
            if self._ready(state, shape):
                return (state,)
            return [v.as_float_array(name, state, self.dtype, shape, "batch, hidden_size")]
        if type(state) is tuple and len(state) == n and all(self._ready(part, shape) for part in state):
            return state
        if not isinstance(state, (tuple, list)) or len(state) != n:
            raise TypeError(f"{name}: expected a tuple ({', '.join(self._state_names)}) of arrays of shape "
                            f"{shape}, got {type(state).__name__}")
        return [v.as_float_array(f"{name}[{i}] ({part})", s, self.dtype, shape, "batch, hidden_size")
                for i, (part, s) in enumerate(zip(self._state_names, state))]

    def _ready(self, value, shape):
        """Whether ``value`` is a small array of ``shape`` that needs no conversion, finite: the
        common case of a state (carried over from the last call), settled in a few attribute reads."""
        return (type(value) is np.ndarray and value.dtype is self.dtype and value.shape == shape
                and value.size <= v.SMALL and value.flags.num & _PLAIN == _PLAIN and all_finite(value))

    def _zero_states(self, B):
        """The state parts (or final-state gradients) of B rows when the caller gives none: zeros,
        made once per B (a list of fresh zeros cost 0.7 µs a call at B = 1)."""
        zeros = self._zeros.get(B)
        if zeros is None:
            if len(self._zeros) >= 16:
                self._zeros.clear()
            zeros = self._zeros[B] = tuple(np.zeros((B, self.hidden_size), self.dtype) for _ in self._state_names)
        return zeros

    def _sequence(self, name, value, shape, hint):
        """``value`` checked as a (T, B, width) sequence; ``shape`` is (T or None, B or None, width).

        The common case, a small array already in the cell's dtype and layout, is settled in a few
        attribute reads and one compiled finiteness loop; anything else (a conversion, an error to
        word, a large array) goes through :func:`fastrnn._validation.as_float_array`."""
        if type(value) is np.ndarray and value.ndim == 3 and value.size > 0:
            T, B, width = value.shape
            if width == shape[2] and shape[0] in (None, T) and shape[1] in (None, B) \
                    and self._ready(value, value.shape):
                return value
        return v.as_float_array(name, value, self.dtype, shape, hint)

    def _pack(self, arrays):
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

    # -- the layer interface (fastrnn.layer) ---------------------------------------------------

    def zero_state(self, batch):
        return self._pack([np.zeros((batch, self.hidden_size), self.dtype) for _ in self._state_names])

    def describe(self):
        return {"kind": type(self).__name__, "input_size": self.input_size, "hidden_size": self.hidden_size,
                **{option: getattr(self, option) for option in self._described}}

    @classmethod
    def from_description(cls, description, dtype, backend):
        options = {key: description[key] for key in cls._described}
        return cls(description["input_size"], description["hidden_size"], dtype=dtype, backend=backend, **options)

    @classmethod
    def described_shapes(cls, description, where, prefix):
        expected = {"kind", "input_size", "hidden_size", *cls._described}
        I, H = description.get("input_size"), description.get("hidden_size")
        if set(description) != expected or not is_size(I) or not is_size(H) or \
                not all(isinstance(description[option], str) for option in cls._described):
            raise DescriptionError(f"{where}: a {cls.__name__} needs exactly {', '.join(sorted(expected - {'kind'}))}, "
                                   f"with sizes from 1 to {MAX_SIZE}")
        shapes = cls.shapes_for(I, H)
        return {f"{prefix}{name}": shape for name, shape in shapes.items() if cls._present(shape)}, H

    def flop_count(self, T, B):
        """6 T B (I + H) G: per step the input (I) and the state (H) meet G gate rows forward, and
        backward forms the weight gradients and the input and state gradients, twice that.
        Pointwise work is not counted."""
        G, H, I = self._blocks * self.hidden_size, self.hidden_size, self.input_size
        return 6 * T * B * (I + H) * G

    def dilated_forward(self, d, x, state):
        """The cell as a layer of dilation ``d`` of a :class:`fastrnn.DilatedRNN`, over checked
        ``x (T, B, I)`` and ``state`` leaves (d, B, H): see :mod:`fastrnn._dilation`."""
        return _dilation.forward(self, d, x, state)

    def dilated_backward(self, d, tape, dy, dstate, truncate):
        """Backward of :meth:`dilated_forward`."""
        return _dilation.backward(self, d, tape, dy, dstate, truncate)

    # -- the kernels' arguments: the one place their order is spelled ---------------------------

    def _forward_args(self, x, states, outputs):
        """``outputs``: y, the final state parts, the tape."""
        return (x, *states, *self._checked_params().middle, *outputs)

    def _backward_args(self, x, tape, dy, dstates, k, outputs):
        """``outputs``: the parameter gradients (placeholders included), dx, the initial state parts."""
        return (x, *self._checked_params().middle, *tape, dy, *dstates, k, *outputs)

    def kernel_calls(self, x, state, dy, dstate, truncate=None):
        """The backend's ``forward_into`` and ``backward_into`` bound to these inputs and to outputs
        allocated once here: ``(forward, backward, outputs)``, two functions of no arguments that
        run the kernels (or the reference) alone, without the checks and allocations of
        :meth:`forward` and :meth:`backward`, as a training loop reusing its buffers would; what
        the benchmarks time. ``backward`` reads the tape the last ``forward`` wrote; ``outputs``
        is ``(grads, dx, dstate0)``, the lists it writes.
        """
        x = v.as_float_array("x", x, self.dtype, (None, None, self.input_size), "T, B, input_size")
        T, B, _ = x.shape
        states, dstates = self._states("state", state, B), self._states("dstate", dstate, B)  # fresh zeros
        dy = v.as_float_array("dy", dy, self.dtype, (T, B, self.output_size), "T, B, output_size")
        # Allocated once and reused by every call: a fresh megabyte-sized array costs its page
        # faults on every call (measured 1.4 ms of a 3.4 ms step at T=100, B=16, H=64), which
        # would time the allocator instead of the kernel.
        plan = self._plan(T, B)
        forward_outputs, backward_outputs = plan.forward.fresh(), plan.backward.fresh()
        tape = forward_outputs[1 + len(states):]
        forward_args = self._forward_args(x, states, forward_outputs)
        backward_args = self._backward_args(x, tape, dy, dstates, v.check_truncate(truncate), backward_outputs)
        n = len(self._shapes)
        # The kernel is chosen at each call, as forward and backward choose it: a caller may change
        # the thread count between calls (the benchmarks time one and N threads in turn).
        return (lambda: self._kernel("forward", B)[0](*forward_args),
                lambda: self._kernel("backward", B)[0](*backward_args),
                (backward_outputs[:n], backward_outputs[n], backward_outputs[n + 1:]))

    # -- the two calls ------------------------------------------------------------------------

    def forward(self, x, state=None):
        """Run the cell over a sequence.

        Parameters
        ----------
        x : array_like, shape (T, B, input_size)
            Time-major input; converted to the cell's dtype.
        state : array_like, shape (B, hidden_size), optional
            Initial state (for LSTM a pair ``(h, c)``); zeros if omitted.

        Returns
        -------
        y : ndarray, shape (T, B, output_size)
            Per-step outputs.
        state : ndarray, shape (B, hidden_size)
            Final state, to carry into the next chunk of the sequence.
        tape : Tape
            What :meth:`backward` needs.
        """
        if type(x) is np.ndarray:
            # A call of a shape made before, with the checks whose outcome can have changed since:
            # the inputs' types, layouts and values, and whether params holds other arrays. Its
            # compiled code then runs without Numba's typing of every argument (see _Repeat).
            repeat = self._repeat_forward.get(x.shape)
            if repeat is not None and x.dtype is self.dtype and x.flags.num & _PLAIN == _PLAIN:
                states = self._repeated_states(repeat, x, state)
                checked, params = self._checked, self.params
                if states is not None and params is checked.seen and params.version == checked.version:
                    outputs = repeat.plan.forward.take()
                    repeat.kernel(x, *states, *checked.middle, *outputs)
                    return self._forward_results(x, outputs)
        given = x
        x = self._sequence("x", x, (None, None, self.input_size), "T, B, input_size")
        T, B, _ = x.shape
        plan = self._plans.get((T, B)) or self._plan(T, B)
        states = plan.zeros if state is None else self._states("state", state, B)
        n = len(states)
        if plan.small:
            outputs = plan.forward.take()
        else:  # y and the tape from the workspace; the final state, small, is always new
            space = self._workspace
            outputs = [space.empty(i, shape, self.dtype) if i == 0 or i > n else np.empty(shape, self.dtype)
                       for i, shape in enumerate(plan.forward.shapes)]
        args = self._forward_args(x, states, outputs)
        self._call("forward", B, args)
        if x is given:
            self._remember(self._repeat_forward, "forward", plan, B, args, x)
        return self._forward_results(x, outputs)

    def _forward_results(self, x, outputs):
        """What forward returns, from the arrays its kernel wrote."""
        n = self._n_states
        return outputs[0], outputs[1] if n == 1 else tuple(outputs[1:n + 1]), Tape(self, x, tuple(outputs[n + 1:]))

    def _remember(self, repeats, direction, plan, B, args, checked, dy_shape=None):
        """Keep a call just made (``args``; ``checked`` is its x or dy) to be repeated by the next
        of its shape, if that can skip Numba's typing: a small call (a large one takes arrays from
        the workspace, not from ``plan``), on one thread, compiled already, whose arrays are all
        :data:`_PLAIN` (a given state's too: states of those types are what it is repeated with)."""
        # Settled once per shape: finding the compiled code types every argument (tens of µs).
        if self.backend != "numba" or args[0].shape in repeats or not plan.small or B >= 2 * MR \
                or checked.size > v.SMALL or self._checked.seen is None or len(repeats) >= 16 \
                or direction in self._fresh \
                or not all(a.flags.num & _PLAIN == _PLAIN for a in args if type(a) is np.ndarray):
            return
        alone, with_states = (checked,), (checked, *plan.zeros)
        all_finite_in(alone), all_finite_in(with_states)  # compiled here, if they are not yet
        kernel = entry_point(self._kernels[direction][0], args)
        finite, finite_with = entry_point(all_finite_in, (alone,)), entry_point(all_finite_in, (with_states,))
        if None not in (kernel, finite, finite_with):
            repeats[args[0].shape] = _Repeat(plan, kernel, finite, finite_with, dy_shape)

    def _repeated_states(self, repeat, checked, state):
        """The state parts a repeated call passes on: ``state`` (or ``dstate``) given, or zeros.
        None unless each is a :data:`_PLAIN` array of the cell's dtype and of the shape the call
        was kept with, and they and ``checked`` (its x or dy) are finite: the call then takes the
        full checks, which convert what they can and word the errors."""
        zeros = repeat.plan.zeros
        if state is None:
            return zeros if repeat.finite((checked,)) else None
        if type(state) is np.ndarray:  # one part, inline: the common carried state
            if state.shape == repeat.state_shape and state.dtype is self.dtype \
                    and state.flags.num & _PLAIN == _PLAIN and repeat.finite_with((checked, state)):
                return (state,)
            return None
        if type(state) is not tuple or len(state) != len(zeros):
            return None
        shape, dtype = zeros[0].shape, self.dtype
        for part in state:
            if type(part) is not np.ndarray or part.dtype is not dtype or part.shape != shape \
                    or part.flags.num & _PLAIN != _PLAIN:
                return None
        return state if repeat.finite_with((checked, *state)) else None

    def backward(self, tape, dy, dstate=None, truncate=None):
        """Backpropagate through the sequence recorded in ``tape``.

        Parameters
        ----------
        tape : Tape
            From this cell's :meth:`forward`.
        dy : array_like, shape (T, B, output_size)
            Gradient of the loss at each output.
        dstate : array_like, shape (B, hidden_size), optional
            Gradient at the final state (a pair for LSTM); zeros if omitted.
        truncate : int or None
            Per-output horizon k: the gradient of output t flows back through steps
            max(0, t-k) ... t only, and into the initial state only when t - k <= 0.
            None is full BPTT; any k >= T-1 equals it.

        Returns
        -------
        grads : dict of ndarray
            Gradients with the keys and shapes of :attr:`params`.
        dx : ndarray, shape (T, B, input_size)
        dstate : ndarray, shape (B, hidden_size)
            Gradient at the initial state (a pair for LSTM).
        """
        if type(tape) is Tape and tape.owner is self and type(dy) is np.ndarray:
            # x was checked by forward, but not necessarily as plain, and its shape can have been
            # set in place since (the full path refuses that).
            x = tape.x
            repeat = self._repeat_backward.get(tape.key)
            if repeat is not None and dy.shape == repeat.dy_shape and dy.dtype is self.dtype \
                    and dy.flags.num & _PLAIN == _PLAIN and x.flags.num & _PLAIN == _PLAIN \
                    and x.shape == tape.key:
                dstates = self._repeated_states(repeat, dy, dstate)
                checked, params = self._checked, self.params
                if dstates is not None and params is checked.seen and params.version == checked.version:
                    k = -1 if truncate is None else v.check_truncate(truncate)
                    outputs = repeat.plan.backward.take()
                    repeat.kernel(x, *checked.middle, *tape.arrays, dy, *dstates, k, *outputs)
                    return self._backward_results(outputs)
        if not isinstance(tape, Tape):
            raise TypeError(f"tape: expected the Tape returned by forward, got {type(tape).__name__}")
        if tape.owner is not self:
            raise ValueError(f"tape: it was made by another cell ({tape.owner!r}); "
                             f"backward needs a tape from this cell's own forward")
        x = tape.x
        if x.shape != tape.key:
            raise ValueError(f"tape: its x has been reshaped in place since forward, from "
                             f"{tape.key} to {x.shape}")
        T, B, _ = x.shape
        k = -1 if truncate is None else v.check_truncate(truncate)
        given = dy
        dy = self._sequence("dy", dy, (T, B, self.output_size), "T, B, output_size of the tape")
        plan = self._plans.get((T, B)) or self._plan(T, B)
        dstates = plan.zeros if dstate is None else self._states("dstate", dstate, B)
        n = len(self._shapes)
        if plan.small:
            outputs = plan.backward.take()
        else:  # dx from the workspace
            space = self._workspace
            outputs = [space.empty("dx", shape, self.dtype) if i == n else np.empty(shape, self.dtype)
                       for i, shape in enumerate(plan.backward.shapes)]
        args = self._backward_args(x, tape.arrays, dy, dstates, k, outputs)
        self._call("backward", B, args)
        if dy is given:
            self._remember(self._repeat_backward, "backward", plan, B, args, dy, dy.shape)
        return self._backward_results(outputs)

    def _backward_results(self, outputs):
        """What backward returns, from the arrays its kernel wrote."""
        n = len(self._names)
        grads = dict(zip(self._names, outputs))
        if not self._all_present:
            grads = {name: grad for name, grad in grads.items() if self._present(grad.shape)}
        return grads, outputs[n], outputs[n + 1] if self._n_states == 1 else tuple(outputs[n + 1:])

    def __repr__(self):
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")


class RNN(Cell):
    r"""Elman RNN, as PyTorch's ``nn.RNN`` (one layer):

    .. math:: h_t = f(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),\quad y_t = h_t

    Parameters
    ----------
    input_size, hidden_size : int
        I and H.
    nonlinearity : {"tanh", "relu", "sigmoid"}
        f. "sigmoid" is the classic binary-addition network.
    dtype : {"float64", "float32"}
    seed : int, optional
        Seed of the U(-1/sqrt(H), 1/sqrt(H)) initialisation.
    backend : {"numba", "numpy"}
        Compiled kernels or the NumPy reference.

    Attributes
    ----------
    params : dict
        ``weight_ih (H, I)``, ``weight_hh (H, H)``, ``bias_ih (H,)``, ``bias_hh (H,)``; live arrays.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> cell = fastrnn.RNN(2, 16, "sigmoid", seed=0)
    >>> x = np.random.default_rng(0).standard_normal((8, 32, 2))   # (T, B, I)
    >>> y, h, tape = cell.forward(x)
    >>> y.shape, h.shape
    ((8, 32, 16), (32, 16))
    >>> grads, dx, dh0 = cell.backward(tape, np.ones_like(y), truncate=4)
    >>> sorted(grads), dx.shape
    (['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih'], (8, 32, 2))

    Chunks carry the state exactly:

    >>> y1, h1, _ = cell.forward(x[:5])
    >>> y2, h2, _ = cell.forward(x[5:], state=h1)
    >>> bool(np.array_equal(np.concatenate([y1, y2]), y))
    True
    """

    _module = "rnn"
    _described = ("nonlinearity",)

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", *, dtype="float64", seed=None,
                 backend="numba"):
        self._nonlinearity = v.check_choice("nonlinearity", nonlinearity, ("tanh", "relu", "sigmoid"))
        super().__init__(input_size, hidden_size, dtype=dtype, seed=seed, backend=backend)

    @property
    def nonlinearity(self):
        """f, fixed at construction (the kernels' option argument is derived from it once)."""
        return self._nonlinearity

    def _options(self):
        return (self._impl.NONLINEARITIES[self.nonlinearity],)


class GRU(Cell):
    r"""Gated recurrent unit, exactly PyTorch's ``nn.GRU`` (one layer); row blocks r, z, n:

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}, \quad y_t = h_t

    Parameters
    ----------
    input_size, hidden_size : int
        I and H.
    dtype : {"float64", "float32"}
    seed : int, optional
        Seed of the U(-1/sqrt(H), 1/sqrt(H)) initialisation.
    backend : {"numba", "numpy"}

    Attributes
    ----------
    params : dict
        ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``: PyTorch's
        ``weight_ih_l0`` etc. without the suffix, so a state dict loads by renaming.
    """

    _module = "gru"



class LSTM(Cell):
    r"""Long short-term memory, exactly PyTorch's ``nn.LSTM`` (one layer); row blocks i, f, g, o:

    .. math::
        i, f, g, o &= \sigma(a_i), \sigma(a_f), \tanh(a_g), \sigma(a_o),
        \quad a = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh} \\
        c_t &= f \odot c_{t-1} + i \odot g, \quad h_t = o \odot \tanh(c_t), \quad y_t = h_t

    The state is the pair ``(h, c)``, each (B, H); ``dstate`` likewise. Truncation cuts both
    paths. Parameters as for :class:`GRU`, with 4H rows.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> lstm = fastrnn.LSTM(2, 16, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((8, 4, 2))
    >>> y, (h, c), tape = lstm.forward(x)
    >>> dstate = (np.zeros_like(h), np.ones_like(c))
    >>> grads, dx, (dh0, dc0) = lstm.backward(tape, np.ones_like(y), dstate=dstate)
    >>> grads["weight_hh"].shape, dc0.shape
    ((64, 16), (4, 16))
    """

    _module = "lstm"



class UGRNN(Cell):
    r"""Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2016); row blocks g (gate), c (candidate):

    .. math::
        g = \sigma(a_g), \quad c = \tanh(a_c), \quad h_t = g \odot h_{t-1} + (1 - g) \odot c, \quad y_t = h_t

    with :math:`a = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}`. The gate block of ``bias_ih``
    starts at 1.0 (the paper's reference implementation); everything else U(-1/sqrt(H), 1/sqrt(H)).
    Parameters as for :class:`GRU`, with 2H rows.
    """

    _module = "ugrnn"
    _forget_blocks = (0,)



class IntersectionRNN(Cell):
    r"""Intersection RNN, "+RNN" (Collins, Sohl-Dickstein & Sussillo 2016); row blocks gh, h, gy, y:

    .. math::
        \tilde x_t &= W_{in} x_t + b_{in} \quad (\text{only when } I \ne H;\ \text{else } \tilde x_t = x_t) \\
        g_h, \tilde h, g_y, \tilde y &= \sigma(a_{gh}), \tanh(a_h), \sigma(a_{gy}), \mathrm{relu}(a_y),
        \quad a = W_{ih} \tilde x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh} \\
        h_t &= g_h \odot h_{t-1} + (1 - g_h) \odot \tilde h \quad (\text{the state}) \\
        y_t &= g_y \odot \tilde x_t + (1 - g_y) \odot \tilde y \quad (\text{the output, not fed back})

    Built to be stacked deep: the output mixes the input back in. ``params``: ``weight_ih (4H, H)``,
    ``weight_hh (4H, H)``, ``bias_ih (4H,)``, ``bias_hh (4H,)``, and when I != H ``weight_in (H, I)``,
    ``bias_in (H,)``. The gh and gy blocks of ``bias_ih`` start at 1.0. With ``truncate=k``, y_t's
    own read of h_{t-1} counts as step t's transition.
    """

    _module = "intersection"
    _forget_blocks = (0, 2)

    @classmethod
    def shapes_for(cls, input_size, hidden_size):
        H, I = hidden_size, input_size
        # The projection exists only when the sizes differ; a zero-size shape marks it absent.
        P = 0 if I == H else H
        G = cls._blocks * H  # the gates read the projected input, H wide
        return {"weight_ih": (G, H), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,), "weight_in": (P, I),
                "bias_in": (P,)}


    def flop_count(self, T, B):
        """The gates read the projected input (H wide, like the state), plus the projection's own
        products when I != H."""
        G, H, I = self._blocks * self.hidden_size, self.hidden_size, self.input_size
        return 6 * T * B * (2 * H) * G + (6 * T * B * I * H if I != H else 0)
