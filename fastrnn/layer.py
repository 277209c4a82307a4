"""The interface every recurrent layer satisfies: the five cells, :class:`~fastrnn.Bidirectional`
and :class:`~fastrnn.DilatedRNN`.

:class:`fastrnn.Model`, the model files, data-parallel workers, synthetic gradients and the
benchmarks ask a layer through these methods and never switch on its type; a new kind of layer
is a subclass of :class:`Layer` and nothing else changes.

A state is an array, or nested tuples (LSTM's ``(h, c)``, a bidirectional pair) and lists (a
stack's layers) of arrays; :func:`tree_map` and :func:`leaves` walk them.
"""

import abc

#: Every layer kind by the name its description carries (filled as the subclasses are defined).
KINDS = {}


class Layer(abc.ABC):
    """A recurrent layer: sizes, dtype, backend, live parameters, and its two calls.

    Attributes
    ----------
    input_size, output_size : int
        Features of each step's input ``x_t`` and output ``y_t``.
    dtype : numpy.dtype
        float64 or float32, for parameters, states and every array the calls return.
    backend : {"numba", "numpy"}
        Compiled kernels, or the NumPy reference.
    params : mapping of str to ndarray
        Live arrays: updated in place by the optimizers, replaceable by assignment.

    Subclasses implement :meth:`forward`, :meth:`backward`, :meth:`zero_state`,
    :meth:`describe`, :meth:`from_description`, :meth:`described_shapes` and
    :meth:`flop_count`; an abstract family of them (:class:`fastrnn.Cell`) sets
    ``abstract_kind = True`` so that it is not registered as a kind.
    """

    abstract_kind = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("abstract_kind", False):
            KINDS[cls.__name__] = cls

    @abc.abstractmethod
    def forward(self, x, state=None):
        """x (T, B, input_size) from ``state`` (zeros if None) -> (y (T, B, output_size),
        final state, tape)."""

    @abc.abstractmethod
    def backward(self, tape, dy, dstate=None, truncate=None):
        """The tape of a forward and dy (T, B, output_size) -> (grads keyed as :attr:`params`,
        dx (T, B, input_size), gradient at the initial state)."""

    @abc.abstractmethod
    def zero_state(self, batch):
        """The layer's state for ``batch`` sequences, all zeros: its nesting and the shape of
        every leaf (the template that validation, random states and synthetic gradients read)."""

    @abc.abstractmethod
    def describe(self):
        """A JSON-able description of the architecture (not the parameters), with its ``"kind"``."""

    @classmethod
    @abc.abstractmethod
    def from_description(cls, description, dtype, backend):
        """The layer :meth:`describe` describes, with fresh parameters."""

    @classmethod
    @abc.abstractmethod
    def described_shapes(cls, description, where, prefix):
        """Check a description's structure and sizes without building anything.

        Returns ({``prefix`` + parameter name: shape}, output size); raises
        :class:`DescriptionError` naming ``where`` for anything that does not fit.
        """

    @abc.abstractmethod
    def flop_count(self, T, B):
        """FLOPs of one forward + backward over (T, B): 2 per multiply-add of the products."""

    def kernel_calls(self, x, state, dy, dstate, truncate=None):
        """(forward, backward, outputs): two functions of no arguments running one forward and one
        backward on these inputs, for timing; ``backward`` uses the last forward's tape and leaves
        (grads, dx, dstate0) in the list ``outputs``. Here through the public calls (a stack's
        work is its layers' calls); a cell binds its kernels directly (:meth:`fastrnn.Cell.kernel_calls`)."""
        tape, outputs = [], []

        def forward():
            tape[:] = [self.forward(x, state)[2]]

        def backward():
            outputs[:] = self.backward(tape[0], dy, dstate, truncate=truncate)

        return forward, backward, outputs

    def state_size(self):
        """S, the number of features of the state of one sequence, all leaves flattened."""
        return sum(leaf.size for leaf in leaves(self.zero_state(1)))


class DescriptionError(ValueError):
    """A layer description that cannot be built; the message says where and why."""


#: The largest size a description may claim (a file's description is checked before building).
MAX_SIZE = 1 << 31


def is_size(value):
    """Whether a described size is a plain int from 1 to :data:`MAX_SIZE`."""
    return type(value) is int and 1 <= value <= MAX_SIZE


def kind_of(description, where, allowed=Layer):
    """The class of a description's ``"kind"``, which must be a subclass of ``allowed``."""
    if not isinstance(description, dict):
        raise DescriptionError(f"{where} is not a description")
    kind = description.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None or not issubclass(cls, allowed):
        raise DescriptionError(f"{where}: unknown or misplaced layer kind {kind!r}")
    return cls


def build(description, dtype, backend, allowed=Layer):
    """The layer a description describes (any kind that is a subclass of ``allowed``)."""
    return kind_of(description, "description", allowed).from_description(description, dtype, backend)


def described_shapes(description, where="core", prefix="", allowed=Layer):
    """:meth:`Layer.described_shapes` of whatever kind the description names."""
    return kind_of(description, where, allowed).described_shapes(description, where, prefix)


def tree_map(fn, *trees):
    """``fn`` applied to the leaves (arrays) of equally nested tuples and lists, in the same nesting."""
    if isinstance(trees[0], (tuple, list)):
        return type(trees[0])(tree_map(fn, *parts) for parts in zip(*trees))
    return fn(*trees)


def leaves(state):
    """The arrays of a state, in order (depth first)."""
    if isinstance(state, (tuple, list)):
        return [leaf for part in state for leaf in leaves(part)]
    return [state]
