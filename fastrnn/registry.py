"""One registry of cell configurations, shared by the tests, ``fastrnn bench``, ``fastrnn compile`` and asv.

Each :class:`CellCase` builds a cell for either backend and seeded inputs for it, and gives the
raw kernel/reference calls (no validation layer) that benchmarks time side by side.
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np

from ._threads import numba_threads
from .cells import GRU, LSTM, RNN, UGRNN, IntersectionRNN
from .layer import tree_map
from .model import Model
from .optim import OPTIMIZERS
from .stacks import Bidirectional, DilatedRNN
from .system import cpu_count

#: (T, B, I, H) timed by ``fastrnn bench`` unless asked otherwise: the binary-addition network,
#: a long thin sequence, a mid-sized batch, and a large one where the products dominate.
CELL_SIZES = ((8, 1, 2, 16), (100, 1, 2, 16), (100, 16, 64, 64), (100, 32, 256, 256))


@dataclass(frozen=True)
class CellCase:
    """A cell class with fixed options, e.g. ``RNN`` with ``nonlinearity="sigmoid"``."""

    name: str
    cls: type
    options: dict = field(default_factory=dict)
    sizes = CELL_SIZES

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



@dataclass(frozen=True)
class StackCase:
    """A :class:`DilatedRNN` recipe: per layer a cell case (a pair of them for a bidirectional
    layer) and a dilation. Layer 0 reads I features; every layer has hidden size H."""

    name: str
    layers: tuple  # of (case name or (forward case name, backward case name), dilation)
    sizes: tuple = ((128, 32, 8, 64),)

    def make(self, input_size, hidden_size, *, dtype="float64", seed=0, backend="numba"):
        cells, size = [], input_size
        for i, (kind, _) in enumerate(self.layers):
            def cell(name, j):
                return BY_CELL_NAME[name].make(size, hidden_size, dtype=dtype, seed=seed + 2 * i + j,
                                               backend=backend)
            layer = Bidirectional(cell(kind[0], 0), cell(kind[1], 1)) if isinstance(kind, tuple) else cell(kind, 0)
            cells.append(layer)
            size = layer.output_size
        return DilatedRNN(cells, [d for _, d in self.layers])

    def __str__(self):
        return self.name


BY_CELL_NAME = {case.name: case for case in CASES}

STACKS = (
    # Issue 4's speed case: Chang et al.'s dilations 1, 2, 4 on GRUs.
    StackCase("gru-dilated-1-2-4", (("gru", 1), ("gru", 2), ("gru", 4))),
    # Every kind of cell in one stack, a bidirectional layer, and dilations that do not divide T.
    StackCase("mixed-dilated", (("rnn-tanh", 1), (("lstm", "irnn"), 3), ("ugrnn", 7)), sizes=((64, 8, 8, 32),)),
    # Chang et al.'s pixel-by-pixel MNIST network (the pixel-mnist task): 9 GRU layers of 20 units,
    # dilations 1, 2, ..., 256, one pixel per step, batch 128.
    StackCase("pixel-mnist-gru", tuple(("gru", 2 ** i) for i in range(9)), sizes=((784, 128, 1, 20),)),
)

BY_NAME = {case.name: case for case in CASES + STACKS}


def random_state(core, batch, rng):
    """A random state for any layer, in its dtype, shaped as its zero state."""
    return tree_map(lambda zero: rng.standard_normal(zero.shape).astype(core.dtype), core.zero_state(batch))


def make_inputs(cell, T, B, seed=0):
    """Seeded ``x``, initial ``state``, output gradient ``dy`` and final-state gradient ``dstate``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, cell.input_size)).astype(cell.dtype)
    state = random_state(cell, B, rng)
    dy = rng.standard_normal((T, B, cell.output_size)).astype(cell.dtype)
    dstate = random_state(cell, B, rng)
    return {"x": x, "state": state, "dy": dy, "dstate": dstate}


def train_step(core, T, B, seed=0, truncate=None):
    """A function running one forward + backward of ``core`` on :func:`make_inputs`' arrays, as
    :meth:`fastrnn.layer.Layer.kernel_calls` binds them: for a cell its backend's kernels (or
    references) alone, without the public layer's checks and allocations; for a stack its
    layers' public calls, which is the work its training loop does. ``step.forward`` and
    ``step.backward`` run the halves apart (backward on the tape the last forward wrote)."""
    inputs = make_inputs(core, T, B, seed)
    forward, backward, outputs = core.kernel_calls(inputs["x"], inputs["state"], inputs["dy"], inputs["dstate"],
                                                   truncate)

    def step():
        forward()
        backward()
        return outputs

    step.forward, step.backward = forward, backward
    return step


def api_step(core, inputs, truncate=None):
    """One forward + backward of ``core`` through its public methods, on ``make_inputs``'s arrays.

    ``step.forward`` and ``step.backward`` run the halves apart (backward on the last tape).
    """
    tape = []

    def forward():
        tape[:] = [core.forward(inputs["x"], inputs["state"])[2]]

    def backward():
        return core.backward(tape[0], inputs["dy"], inputs["dstate"], truncate=truncate)

    def step():
        forward()
        return backward()

    step.forward, step.backward = forward, backward
    return step


def warm(case, dtype):
    """Load or compile everything training ``case`` in ``dtype`` calls: its kernels, forward and
    backward (their types do not depend on sizes, state or truncation), the optimizers'
    updates, and fit's compiled loop for a model of this cell (one for every loss and optimizer);
    what ``fastrnn compile`` runs per case."""
    core = case.make(2, 3, dtype=dtype, seed=0)
    step = api_step(core, make_inputs(core, 2, 1), truncate=1)
    grads, _, _ = step()
    for make in OPTIMIZERS.values():
        make().step(dict(core.params.items()), grads)
    model = Model(core, 2, seed=0)
    model.fit(np.zeros((2, 2, 2), dtype), np.zeros((2, 2), np.intp), epochs=1, progress=False)


def warm_threaded(case, dtype):
    """Load or compile the threaded twins of ``case``'s kernels (compiled on first use by a call
    large enough to share its steps out), through such a call; nothing where they would not be used
    (one Numba thread, or the workqueue layer)."""
    core = case.make(2, 128, dtype=dtype, seed=0)
    B = 16  # 16 rows of H = 128: above the size from which a cell takes its twins, in either dtype
    with numba_threads(min(2, numba.config.NUMBA_NUM_THREADS)):
        if core._kernel("forward", B)[1] == "forward threaded":
            api_step(core, make_inputs(core, 2, B), truncate=1)()


def _compile_module(name, dtypes, threaded=False):
    """In a worker process: one cell's kernels in each dtype, as :func:`warm` calls them (and
    :func:`warm_threaded`, with ``threaded``). Returns [(name, dtype, seconds)]."""
    done = []
    for dtype in dtypes:
        began = time.perf_counter()
        warm(BY_CELL_NAME[name], dtype)
        if threaded:
            warm_threaded(BY_CELL_NAME[name], dtype)
        done.append((name, dtype, time.perf_counter() - began))
    return done


def compile_cells(names, dtypes, jobs=None, report=print, threaded=False):
    """Compile (or load) the kernels of the named cells in each dtype, in worker processes
    ``jobs`` at a time (default: every core), then check here that every one loads from the
    cache; with ``threaded``, their threaded twins too. ``report(name, dtype, seconds)`` is called
    as each finishes; returns the list of those triples (what ``fastrnn compile`` runs).

    Numba's cache is not safe to write from two processes at once: each writer rewrites a
    function's whole index and numbers its data files from what it read, so two writers of one
    function can pair one's index entry with the other's machine code. The work is therefore
    split so that no two processes write the same function: the first cell, in every dtype,
    compiles here with the pieces all cells share (the matrix product, the optimizers, the
    training loop's head, loss and update); then
    each other kernel module (rnn-tanh, -relu and -sigmoid share one) goes to one worker whole.
    """
    modules = {}
    for name in names:
        modules.setdefault(BY_CELL_NAME[name].cls._module, name)
    first, *others = modules.values()
    done = []
    for result in _compile_module(first, dtypes, threaded):
        done.append(result)
        report(*result)
    if others:
        # spawn: a fresh interpreter per worker rather than a fork of this one's LLVM state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, min(jobs or cpu_count(), len(others))),
                                 mp_context=context) as pool:
            for results in pool.map(_compile_module, others, [dtypes] * len(others), [threaded] * len(others)):
                for result in results:
                    done.append(result)
                    report(*result)
    for name in names:  # loads from the cache now; compiles whatever a worker could not write
        for dtype in dtypes:
            warm(BY_CELL_NAME[name], dtype)
            if threaded:
                warm_threaded(BY_CELL_NAME[name], dtype)
    return done

