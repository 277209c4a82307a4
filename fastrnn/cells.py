"""Recurrent cells: the public, validated face of the kernels and their reference twins.

A cell owns its parameters and calls either :mod:`fastrnn.kernels` (``backend="numba"``) or
:mod:`fastrnn.reference` (``backend="numpy"``); both have the same functions and signatures::

    forward_into(x, *state, *params, *options, y, *final_state, *tape)
    backward_into(x, *params, *options, *tape, dy, *dfinal_state, truncate, *param_grads, dx, *dstate)

(the ``_into`` forms: arrays allocated here by NumPy are cheaper than arrays returned by Numba).
"""

import importlib
import math

import numpy as np

from . import _validation as v

BACKENDS = {"numba": "fastrnn.kernels", "numpy": "fastrnn.reference"}


class Tape:
    """What :meth:`Cell.backward` needs from a forward call. Opaque; bound to the cell that made it."""

    __slots__ = ("owner", "x", "arrays")

    def __init__(self, owner, x, arrays):
        self.owner = owner
        self.x = x
        self.arrays = arrays

    @property
    def shape(self):
        """(T, B) of the sequence this tape recorded."""
        return self.x.shape[:2]

    def __repr__(self):
        T, B = self.shape
        return f"<Tape of {type(self.owner).__name__} T={T} B={B}>"


class Cell:
    """Base class of every cell: parameters, validation, and dispatch to a backend.

    Subclasses set ``_module`` (the kernel/reference module name), ``_blocks`` (gate blocks in
    the weight matrices), ``_forget_blocks`` (blocks whose ``bias_ih`` starts at 1.0) and
    ``_state_names``, and may override ``_param_shapes`` and ``_options``.
    """

    _module = None
    _blocks = 1
    _forget_blocks = ()
    _state_names = ("h",)

    def __init__(self, input_size, hidden_size, *, dtype="float64", seed=None, backend="numba"):
        self.input_size = v.check_positive_int("input_size", input_size)
        self.hidden_size = v.check_positive_int("hidden_size", hidden_size)
        self.dtype = v.check_dtype(dtype)
        self.backend = v.check_choice("backend", backend, tuple(BACKENDS))
        self._impl = importlib.import_module(f"{BACKENDS[backend]}.{self._module}")
        self._shapes = self._param_shapes()
        self.params = self._init_params(np.random.default_rng(seed))

    # -- layout -------------------------------------------------------------------------------

    def _param_shapes(self):
        G, H, I = self._blocks * self.hidden_size, self.hidden_size, self.input_size
        return {"weight_ih": (G, I), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,)}

    def _options(self):
        return ()

    def _tape_shapes(self, T, B):
        """Shapes of the tape arrays that forward fills (the hidden states, for the plain RNN)."""
        return [(T + 1, B, self.hidden_size)]

    def _init_params(self, rng):
        # PyTorch's rule: U(-1/sqrt(H), 1/sqrt(H)) for everything. Drawn in float64 and then
        # cast, so float32 and float64 cells with one seed start from the same numbers.
        bound = 1.0 / math.sqrt(self.hidden_size)
        params = {name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                  for name, shape in self._shapes.items()}
        H = self.hidden_size
        for block in self._forget_blocks:
            params["bias_ih"][block * H:(block + 1) * H] = 1.0
        return params

    @property
    def output_size(self):
        """Feature size of the per-step output y."""
        return self.hidden_size

    def _param_list(self):
        for name, shape in self._shapes.items():
            v.check_param(name, self.params.get(name), self.dtype, shape)
        return [self.params[name] for name in self._shapes]

    # -- state handling -----------------------------------------------------------------------

    def _states(self, name, state, batch):
        """Validate a state (an array, or a tuple for multi-array states) into a list of arrays."""
        n = len(self._state_names)
        shape = (batch, self.hidden_size)
        if state is None:
            return [np.zeros(shape, self.dtype) for _ in range(n)]
        if n == 1:
            return [v.as_float_array(name, state, self.dtype, shape, "batch, hidden_size")]
        if not isinstance(state, (tuple, list)) or len(state) != n:
            raise TypeError(f"{name}: expected a tuple ({', '.join(self._state_names)}) of arrays of shape "
                            f"{shape}, got {type(state).__name__}")
        return [v.as_float_array(f"{name}[{i}] ({part})", s, self.dtype, shape, "batch, hidden_size")
                for i, (part, s) in enumerate(zip(self._state_names, state))]

    def _pack(self, arrays):
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

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
        x = v.as_float_array("x", x, self.dtype, (None, None, self.input_size), "T, B, input_size")
        T, B, _ = x.shape
        states = self._states("state", state, B)
        y = np.empty((T, B, self.output_size), self.dtype)
        final = [np.empty((B, self.hidden_size), self.dtype) for _ in states]
        tape = [np.empty(shape, self.dtype) for shape in self._tape_shapes(T, B)]
        self._impl.forward_into(x, *states, *self._param_list(), *self._options(), y, *final, *tape)
        return y, self._pack(final), Tape(self, x, tuple(tape))

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
        if not isinstance(tape, Tape):
            raise TypeError(f"tape: expected the Tape returned by forward, got {type(tape).__name__}")
        if tape.owner is not self:
            raise ValueError(f"tape: it was made by another cell ({tape.owner!r}); "
                             f"backward needs a tape from this cell's own forward")
        T, B = tape.shape
        k = v.check_truncate(truncate)
        dy = v.as_float_array("dy", dy, self.dtype, (T, B, self.output_size), "T, B, output_size of the tape")
        dstates = self._states("dstate", dstate, B)
        grads = {name: np.empty(shape, self.dtype) for name, shape in self._shapes.items()}
        dx = np.empty_like(tape.x)
        dstate0 = [np.empty_like(d) for d in dstates]
        self._impl.backward_into(tape.x, *self._param_list(), *self._options(), *tape.arrays, dy, *dstates, k,
                                 *grads.values(), dx, *dstate0)
        return grads, dx, self._pack(dstate0)

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
    """

    _module = "rnn"

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", *, dtype="float64", seed=None,
                 backend="numba"):
        self.nonlinearity = v.check_choice("nonlinearity", nonlinearity, ("tanh", "relu", "sigmoid"))
        super().__init__(input_size, hidden_size, dtype=dtype, seed=seed, backend=backend)

    def _options(self):
        return (self._impl.NONLINEARITIES[self.nonlinearity],)
