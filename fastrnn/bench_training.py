"""A whole training step, side by side (``fastrnn bench --training``): what a user's training
loop feels, where :mod:`fastrnn.bench` times the kernels alone.

Per cell, size and dtype, one update of a batch (forward, head, loss, backward, Adam) through

- :meth:`fastrnn.Model.training_step` on the numba backend,
- the same on the numpy backend (the references),
- PyTorch (``nn.RNN``/``GRU``/``LSTM`` + ``nn.Linear`` + the loss + ``torch.optim.Adam``, one
  thread) where it has the cell; for the sigmoid RNN, PyTorch's tanh ``nn.RNN``, the closest.

and, for binary addition, updates of batch 1 with plain SGD: ``Model.fit`` against the classic
per-sample NumPy program (:func:`classic_binary_addition`, written the way the "RNN from
scratch" tutorials write it), the baseline users migrate from.
"""

import time
from dataclasses import dataclass

import numpy as np

from . import datasets
from .bench import Measured, bench_case, calibrate, per_call
from .model import Model
from .optim import SGD, Adam
from .registry import BY_CELL_NAME
from .system import blas_threads

#: (T, B, I, H): binary addition in batches of 16 and of 1, and a mid-sized problem.
SIZES = ((8, 16, 2, 16), (8, 1, 2, 16), (100, 16, 64, 64))
CELLS = ("rnn-sigmoid", "gru", "lstm")


@dataclass
class TrainingRow(Measured):
    numba_us: float
    numpy_us: float
    torch_us: float = None
    #: The kernels' own forward+backward ratio against the references at this size, measured in
    #: the same run (:func:`fastrnn.bench.bench_case`): what the training step could at best keep.
    kernel_ratio: float = None

    @property
    def vs_numpy(self):
        return self.numpy_us / self.numba_us

    @property
    def of_kernel_ratio(self):
        """The step's ratio against the numpy backend, as a fraction of the kernels' own."""
        return None if self.kernel_ratio is None else self.vs_numpy / self.kernel_ratio

    @property
    def vs_torch(self):
        return None if self.torch_us is None else self.torch_us / self.numba_us


def _data(size, dtype, seed=0):
    T, B, I, H = size
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, (B, T, I)).astype(dtype)
    Y = rng.integers(0, 2, (B, T, 1)).astype(dtype)
    return X, Y


def _model_step(name, size, dtype, backend, seed=0):
    T, B, I, H = size
    core = BY_CELL_NAME[name].make(I, H, dtype=dtype, seed=seed, backend=backend)
    model = Model(core, 1, loss="sigmoid_cross_entropy", seed=seed)
    return model.training_step(*_data(size, dtype, seed), optimizer=Adam(1e-3))


def _torch_step(name, size, dtype, seed=0):
    try:
        import torch  # noqa: PLC0415  (optional)
    except ImportError:
        return None
    T, B, I, H = size
    kinds = {"rnn-sigmoid": lambda: torch.nn.RNN(I, H, nonlinearity="tanh"),
             "rnn-tanh": lambda: torch.nn.RNN(I, H, nonlinearity="tanh"),
             "rnn-relu": lambda: torch.nn.RNN(I, H, nonlinearity="relu"),
             "gru": lambda: torch.nn.GRU(I, H), "lstm": lambda: torch.nn.LSTM(I, H)}
    if name not in kinds:
        return None
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    torch.manual_seed(seed)
    layer, head = kinds[name]().to(torch_dtype), torch.nn.Linear(H, 1).to(torch_dtype)
    optimizer = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=1e-3)
    X, Y = _data(size, dtype, seed)
    x, y = torch.from_numpy(np.swapaxes(X, 0, 1).copy()), torch.from_numpy(np.swapaxes(Y, 0, 1).copy())
    loss = torch.nn.BCEWithLogitsLoss()

    def step():
        optimizer.zero_grad()
        loss(head(layer(x)[0]), y).backward()
        optimizer.step()

    return step


def bench_training(name, size, dtype="float64", repeat=5, min_time=0.05):
    """One :class:`TrainingRow`: the three steps calibrated, then timed interleaved, the best kept."""
    steps = [_model_step(name, size, dtype, "numba"), _model_step(name, size, dtype, "numpy")]
    theirs = _torch_step(name, size, dtype)
    if theirs is not None:
        steps.append(theirs)
    with np.errstate(over="ignore", invalid="ignore"):
        numbers = [calibrate(step, min_time) for step in steps]
        best = [np.inf] * len(steps)
        for _ in range(repeat):
            for i, (step, number) in enumerate(zip(steps, numbers)):
                best[i] = min(best[i], per_call(step, number))
    T, B, I, H = size
    kernels = bench_case(BY_CELL_NAME[name], size, dtype, repeat=repeat, min_time=min_time)
    return TrainingRow(name, np.dtype(dtype).name, T, B, I, H, best[0] * 1e6, best[1] * 1e6,
                       best[2] * 1e6 if theirs is not None else None, kernels.speedup)


def classic_binary_addition(X, Y, hidden=16, lr=0.1, seed=0):
    """The classic per-sample NumPy program: a sigmoid RNN, one pair at a time, hand-written BPTT
    of the squared error summed over the bits, plain SGD. Returns the trained
    ``(w_ih (I, H), w_hh (H, H), b_h (H,), w_out (H, 1), b_out (1,))``.

    Written as the tutorials write it (loops over time in Python, one sample per update), with
    biases, so that it does fastrnn's work; it is the baseline, not an oracle.
    """
    rng = np.random.default_rng(seed)
    I, H = X.shape[2], hidden
    w_ih, w_hh, w_out = (rng.uniform(-1, 1, shape) for shape in ((I, H), (H, H), (H, 1)))
    b_h, b_out = np.zeros(H), np.zeros(1)

    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    for x, y in zip(X, Y):
        hs = [np.zeros(H)]
        outs = []
        for t in range(len(x)):
            hs.append(sigmoid(x[t] @ w_ih + hs[-1] @ w_hh + b_h))
            outs.append(sigmoid(hs[-1] @ w_out + b_out))
        d_ih, d_hh, d_out, d_bh, d_bo = (np.zeros_like(w) for w in (w_ih, w_hh, w_out, b_h, b_out))
        future = np.zeros(H)
        for t in reversed(range(len(x))):
            delta_out = (outs[t] - y[t]) * outs[t] * (1 - outs[t])
            d_out += np.outer(hs[t + 1], delta_out)
            d_bo += delta_out
            delta_h = (delta_out @ w_out.T + future @ w_hh.T) * hs[t + 1] * (1 - hs[t + 1])
            d_ih += np.outer(x[t], delta_h)
            d_hh += np.outer(hs[t], delta_h)
            d_bh += delta_h
            future = delta_h
        for w, d in ((w_ih, d_ih), (w_hh, d_hh), (w_out, d_out), (b_h, d_bh), (b_out, d_bo)):
            w -= lr * d
    return w_ih, w_hh, b_h, w_out, b_out


def batch_one(updates=2000, seed=0):
    """Seconds per batch-1 SGD update on binary addition: ``Model.fit`` (numba and numpy backends)
    and the classic program, each over the same ``updates`` pairs. Returns a dict of seconds."""
    (X, Y), _ = datasets.binary_addition(updates, 1, seed=seed)
    seconds = {}
    for backend in ("numba", "numpy"):
        def fit(backend=backend, n=updates):
            model = Model(BY_CELL_NAME["rnn-sigmoid"].make(2, 16, seed=seed, backend=backend), 1,
                          loss="sigmoid_cross_entropy", reduction="sum", seed=seed)
            model.fit(X[:n], Y[:n], epochs=1, batch_size=1, optimizer=SGD(0.1), progress=False)

        fit(n=2)  # compiles, or loads Numba's cache
        began = time.perf_counter()
        fit()
        seconds[f"fastrnn {backend}"] = (time.perf_counter() - began) / updates
    began = time.perf_counter()
    classic_binary_addition(X, Y, seed=seed)
    seconds["classic NumPy program"] = (time.perf_counter() - began) / updates
    return seconds


def format_markdown(rows):
    lines = ["| cell | dtype | T | B | I | H | numba µs | numpy backend µs | PyTorch µs | vs numpy | vs torch "
             "| kernels' ratio | step / kernels |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        torch = "—" if r.torch_us is None else f"{r.torch_us:.1f}"
        versus = "—" if r.vs_torch is None else f"{r.vs_torch:.1f}x"
        kernels = "—" if r.kernel_ratio is None else f"{r.kernel_ratio:.1f}x | {r.of_kernel_ratio:.2f}"
        lines.append(f"| {r.cell} | {r.dtype} | {r.T} | {r.B} | {r.I} | {r.H} | {r.numba_us:.1f} | "
                     f"{r.numpy_us:.1f} | {torch} | {r.vs_numpy:.1f}x | {versus} | {kernels} |")
    return "\n".join(lines)


def task_step(task, backend, X, Y, *, cell=None, hidden=None, seed=0):
    """One training update of a built-in task's model on the batch (X, Y), with the task's own
    fit options (optimizer, truncation, synthetic gradients): :meth:`fastrnn.Model.training_step`."""
    model = task.model(cell, hidden, backend, seed, input_size=X.shape[2])
    options = task.fit_kwargs()
    return model.training_step(X, Y, optimizer=options["optimizer"], tbptt=options.get("tbptt"),
                               truncate=options.get("truncate"), synthetic_gradients=options.get("synthetic_gradients"))


def task_step_times(task, X, Y, *, cell=None, hidden=None, seed=0, repeat=3, min_time=0.05):
    """Seconds of :func:`task_step` on the numba and the numpy backend, the best of ``repeat``
    interleaved runs in this process with BLAS on one thread (what ``fastrnn train`` prints);
    returns ((numba, numpy), a description of the BLAS threads)."""
    steps = [task_step(task, backend, X, Y, cell=cell, hidden=hidden, seed=seed) for backend in ("numba", "numpy")]
    limits, threads = blas_threads(1)
    with limits:
        numbers = [calibrate(step, min_time) for step in steps]
        best = [np.inf, np.inf]
        for _ in range(repeat):
            for i, (step, number) in enumerate(zip(steps, numbers)):
                best[i] = min(best[i], per_call(step, number))
    return tuple(best), threads

