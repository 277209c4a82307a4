"""One registry of cell configurations, shared by the tests, ``fastrnn bench`` and asv.

Each :class:`CellCase` builds a cell for either backend and seeded inputs for it, and gives the
raw kernel/reference calls (no validation layer) that benchmarks time side by side.
"""

from dataclasses import dataclass, field

import numpy as np

from .cells import GRU, LSTM, RNN, UGRNN, IntersectionRNN


@dataclass(frozen=True)
class CellCase:
    """A cell class with fixed options, e.g. ``RNN`` with ``nonlinearity="sigmoid"``."""

    name: str
    cls: type
    options: dict = field(default_factory=dict)

    def make(self, input_size, hidden_size, *, dtype="float64", seed=0, backend="numba"):
        return self.cls(input_size, hidden_size, dtype=dtype, seed=seed, backend=backend, **self.options)

    def __str__(self):
        return self.name


CASES = (
    CellCase("rnn-tanh", RNN, {"nonlinearity": "tanh"}),
    CellCase("rnn-relu", RNN, {"nonlinearity": "relu"}),
    CellCase("rnn-sigmoid", RNN, {"nonlinearity": "sigmoid"}),
    CellCase("gru", GRU),
    CellCase("lstm", LSTM),
    CellCase("ugrnn", UGRNN),
    CellCase("irnn", IntersectionRNN),
)

BY_NAME = {case.name: case for case in CASES}


def random_state(cell, batch, rng):
    """A random state for ``cell`` (a tuple for multi-array states), in the cell's dtype."""
    parts = [rng.standard_normal((batch, cell.hidden_size)).astype(cell.dtype) for _ in cell._state_names]
    return parts[0] if len(parts) == 1 else tuple(parts)


def make_inputs(cell, T, B, seed=0):
    """Seeded ``x``, initial ``state``, output gradient ``dy`` and final-state gradient ``dstate``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, cell.input_size)).astype(cell.dtype)
    state = random_state(cell, B, rng)
    dy = rng.standard_normal((T, B, cell.output_size)).astype(cell.dtype)
    dstate = random_state(cell, B, rng)
    return {"x": x, "state": state, "dy": dy, "dstate": dstate}


def train_step(cell, T, B, seed=0, truncate=None):
    """A function running one forward + backward of ``cell``'s backend module directly.

    The arguments are validated and converted once here, and the outputs allocated once, so the
    returned callable times the kernel (or the reference) alone, through its ``_into`` functions,
    without the public layer's checks and allocations.
    """
    inputs = make_inputs(cell, T, B, seed)
    x = inputs["x"]
    states = cell._states("state", inputs["state"], B)
    dstates = cell._states("dstate", inputs["dstate"], B)
    params = cell._param_list()
    options = cell._options()
    dy = inputs["dy"]
    k = -1 if truncate is None else truncate
    impl = cell._impl
    T, B = x.shape[:2]

    # Output buffers are allocated once and reused by every call, as a training loop does: a
    # fresh megabyte-sized array costs its page faults on every call (measured 1.4 ms of a 3.4 ms
    # step at T=100, B=16, H=64), which would time the allocator instead of the kernel.
    y = np.empty((T, B, cell.output_size), cell.dtype)
    final = [np.empty_like(s) for s in states]
    tape = [np.empty(shape, cell.dtype) for shape in cell._tape_shapes(T, B)]
    grads = [np.empty_like(p) for p in params]
    dx = np.empty_like(x)
    dstate0 = [np.empty_like(s) for s in states]

    forward_args = (x, *states, *params, *options, y, *final, *tape)
    backward_args = (x, *params, *options, *tape, dy, *dstates, k, *grads, dx, *dstate0)
    forward_into, backward_into = impl.forward_into, impl.backward_into

    def step():
        forward_into(*forward_args)
        backward_into(*backward_args)
        return grads, dx, dstate0

    return step
