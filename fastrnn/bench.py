"""Side-by-side timing of kernels and their NumPy references, in one process.

Speed is reported as ratios: absolute times drift on shared machines, a ratio measured in one
run with interleaved repeats much less so. Each row also gives the kernel's achieved floating-point
rate as a fraction of the rate of the kernels' own matrix product for the dtype on 512x512
matrices (measured in the same run), and, with ``against_torch``, PyTorch's fused layer on the
same work.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from ._dilation import gather
from ._threads import numba_threads
from ._workspace import Workspace
from .kernels._gemm import matmul
from .registry import BY_NAME, CASES, STACKS, StackCase, api_step, make_inputs, train_step


@dataclass
class Measured:
    """What a benchmark row measured: a registry case, a dtype and a size (T, B, I, H)."""

    cell: str
    dtype: str
    T: int
    B: int
    I: int
    H: int


@dataclass
class BenchRow(Measured):
    truncate: object
    kernel_us: float
    reference_us: float
    api_us: float
    gflop: float = float("nan")
    gemm_gflops: float = float("nan")
    torch_us: float = None
    #: Numba threads the kernel and the API call ran on; with more than one, ``one_thread_us`` is
    #: the kernel on one thread, measured interleaved with the rest.
    threads: int = 1
    one_thread_us: float = None

    @property
    def speedup(self):
        return self.reference_us / self.kernel_us

    @property
    def gflops(self):
        """The kernel's achieved rate, GFLOP/s."""
        return self.gflop / (self.kernel_us * 1e-6)

    @property
    def gemm_fraction(self):
        """Achieved rate over the single-threaded rate of the kernels' matrix product for the dtype."""
        return self.gflops / self.gemm_gflops

    @property
    def vs_torch(self):
        return None if self.torch_us is None else self.torch_us / self.kernel_us

    @property
    def scaling(self):
        """Kernel time on one thread over kernel time on :attr:`threads` threads."""
        return None if self.one_thread_us is None else self.one_thread_us / self.kernel_us

    def as_dict(self):
        return {**asdict(self), "speedup": self.speedup, "gflops": self.gflops, "gemm_fraction": self.gemm_fraction,
                "vs_torch": self.vs_torch, "scaling": self.scaling}


def flop_count(core, T, B):
    """FLOPs of one forward + backward of any layer (:meth:`fastrnn.layer.Layer.flop_count`):
    2 per multiply-add of the input and recurrent products; pointwise work is not counted."""
    return core.flop_count(T, B)


def gemm_rate(dtype, size=512, repeat=5):
    """GFLOP/s of a (size, size) x (size, size) product through the matrix product the kernels use."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty((size, size), dtype)
    number = calibrate(lambda: matmul(a, b, out), 0.05)
    best = min(per_call(lambda: matmul(a, b, out), number) for _ in range(repeat))
    return 2 * size ** 3 / best / 1e9


def torch_step(case, size, dtype, seed=0):
    """PyTorch's fused nn.RNN/GRU/LSTM forward + backward on the same work, or None where there
    is none (sigmoid RNN, UGRNN, +RNN, stacks holding them or LSTMs or bidirectional layers) or
    torch is not installed. A dilated stack becomes PyTorch layers over the same interleaved chains."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    makers = {"rnn-tanh": lambda I, H: torch.nn.RNN(I, H, nonlinearity="tanh"),
              "rnn-relu": lambda I, H: torch.nn.RNN(I, H, nonlinearity="relu"),
              "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
    T, B, I, H = size
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    torch.manual_seed(seed)
    if isinstance(case, StackCase):
        return _torch_dilated_step(torch, makers, case, size, torch_dtype, seed)
    name = case.name
    if name not in makers:
        return None
    layer = makers[name](I, H).to(torch_dtype)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((T, B, I)), dtype=torch_dtype, requires_grad=True)
    h0 = torch.tensor(rng.standard_normal((1, B, H)), dtype=torch_dtype, requires_grad=True)
    state = (h0, torch.zeros_like(h0, requires_grad=True)) if name == "lstm" else h0
    dy = torch.tensor(rng.standard_normal((T, B, H)), dtype=torch_dtype)

    def step():
        for tensor in (x, h0, *layer.parameters()):
            tensor.grad = None
        y, _ = layer(x, state)
        y.backward(dy)

    return step


def _torch_dilated_step(torch, makers, case, size, torch_dtype, seed):
    """A dilated stack of PyTorch's fused layers, each run over its interleaved chains exactly as
    :func:`fastrnn._dilation.forward` splits them (T = q d + r: r chains of q + 1 steps, d - r
    of q steps), from zero states; None if a layer has no PyTorch twin (or is bidirectional)."""
    if any(not isinstance(kind, str) or kind not in makers for kind, _ in case.layers):
        return None
    T, B, I, H = size
    layers = [makers[kind](I if i == 0 else H, H).to(torch_dtype) for i, (kind, _) in enumerate(case.layers)]
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((T, B, I)), dtype=torch_dtype, requires_grad=True)
    dy = torch.tensor(rng.standard_normal((T, B, H)), dtype=torch_dtype)

    def chains(d):
        """Row indices into a (T*B, F) array for the chain groups of dilation d, as the stack's own
        :func:`fastrnn._dilation.gather` forms them, and the inverse order back to (T*B)."""
        groups = [g[..., 0] for g in gather(np.arange(T * B).reshape(T, B, 1), d, Workspace(), "rows")
                  if g is not None]
        inverse = np.argsort(np.concatenate([g.ravel() for g in groups]))
        return [(torch.from_numpy(g.ravel()), g.shape) for g in groups], torch.from_numpy(inverse)

    orders = {d: chains(d) for _, d in case.layers if T % d}

    def dilated(layer, d, a):
        if d not in orders:  # d divides T: the chains are a's own rows, as in the stack (a view)
            return layer(a.reshape(T // d, d * B, -1))[0].reshape(T, B, -1)
        groups, inverse = orders[d]
        flat = a.reshape(T * B, -1)
        outputs = [layer(flat[rows].reshape(*shape, -1))[0].reshape(-1, H) for rows, shape in groups]
        return torch.cat(outputs)[inverse].reshape(T, B, -1)

    def forward(a):
        for layer, (_, d) in zip(layers, case.layers):
            a = dilated(layer, d, a)
        return a

    def step():
        for tensor in (x, *(p for layer in layers for p in layer.parameters())):
            tensor.grad = None
        forward(x).backward(dy)

    step.layers, step.forward = layers, forward  # for the test that checks this twin computes the stack
    return step


def calibrate(fn, min_time):
    """How many calls of ``fn`` make one measurement of at least ``min_time`` seconds.

    The first call warms up: it compiles, or loads Numba's on-disk cache.
    """
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))


def per_call(fn, number):
    """Seconds per call of ``fn``, averaged over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def bench_case(case, size, dtype="float64", truncate=None, repeat=5, min_time=0.02, seed=0, gemm_gflops=None,
               against_torch=False, threads=1):
    """Time one forward+backward of ``case`` at ``size`` = (T, B, I, H) on both backends
    (and PyTorch's fused layer, with ``against_torch``, where it has one).

    The kernel and the API call run on ``threads`` Numba threads; with more than one, the kernel
    is also timed on one thread, interleaved with the rest, for :attr:`BenchRow.scaling`. PyTorch
    runs on whatever ``torch.set_num_threads`` says, the reference on NumPy's BLAS threads.

    For a stack, "kernel" is the whole stack on the numba backend through its public methods
    (the cells' kernels plus the interleaving around them), so it equals "via API".
    """
    T, B, I, H = size
    fast = case.make(I, H, dtype=dtype, seed=seed, backend="numba")
    slow = case.make(I, H, dtype=dtype, seed=seed, backend="numpy")
    kernel_step = train_step(fast, T, B, seed, truncate)
    reference_step = train_step(slow, T, B, seed, truncate)
    api = api_step(fast, make_inputs(fast, T, B, seed), truncate)
    # (call, Numba threads it runs on); the reference and PyTorch do not use Numba's threads.
    steps = [(kernel_step, threads), (reference_step, 1), (api, threads)]
    theirs = torch_step(case, size, dtype, seed) if against_torch and truncate is None else None
    if theirs is not None:
        steps.append((theirs, 1))
    if threads > 1:
        steps.append((kernel_step, 1))
    numbers = []
    for step, n in steps:
        with numba_threads(n):
            numbers.append(calibrate(step, min_time))
    best = [np.inf] * len(steps)
    # Interleave them so that drift in the machine's speed hits them alike.
    for _ in range(repeat):
        for i, ((step, n), number) in enumerate(zip(steps, numbers)):
            with numba_threads(n):
                best[i] = min(best[i], per_call(step, number))
    return BenchRow(case.name, np.dtype(dtype).name, T, B, I, H, truncate, best[0] * 1e6, best[1] * 1e6,
                    best[2] * 1e6, flop_count(fast, T, B) / 1e9,
                    gemm_gflops if gemm_gflops is not None else float("nan"),
                    best[3] * 1e6 if theirs is not None else None, threads,
                    best[-1] * 1e6 if threads > 1 else None)


def run(cells=None, sizes=None, dtypes=("float64",), truncate=None, repeat=5, min_time=0.02,
        progress=None, against_torch=False, threads=1):
    """Benchmark every requested cell or stack, size and dtype; returns a list of :class:`BenchRow`.

    ``sizes=None`` times each registry case at its own sizes (``case.sizes``).
    """
    cases = CASES + STACKS if not cells else [BY_NAME[name] for name in cells]
    rates = {dtype: gemm_rate(dtype) for dtype in dtypes}
    rows = []
    for case in cases:
        for dtype in dtypes:
            for size in sizes or case.sizes:
                row = bench_case(case, size, dtype, truncate, repeat, min_time, gemm_gflops=rates[dtype],
                                 against_torch=against_torch, threads=threads)
                rows.append(row)
                if progress:
                    progress(row)
    return rows


HEADER = (f"{'cell':<18} {'dtype':<8} {'T':>4} {'B':>4} {'I':>4} {'H':>4}  "
          f"{'kernel µs':>10} {'reference µs':>13} {'speedup':>8} {'via API µs':>11} {'of GEMM':>8} {'vs torch':>9} "
          f"{'threads':>7} {'vs 1 thread':>11}")


def _torch_cell(row):
    return "—" if row.vs_torch is None else f"{row.vs_torch:.1f}x"


def _scaling_cell(row):
    return "—" if row.scaling is None else f"{row.scaling:.2f}x"


def format_row(row):
    return (f"{row.cell:<18} {row.dtype:<8} {row.T:>4} {row.B:>4} {row.I:>4} {row.H:>4}  "
            f"{row.kernel_us:>10.1f} {row.reference_us:>13.1f} {row.speedup:>7.1f}x {row.api_us:>11.1f} "
            f"{row.gemm_fraction:>8.0%} {_torch_cell(row):>9} {row.threads:>7} {_scaling_cell(row):>11}")


def format_markdown(rows):
    lines = ["| cell | dtype | T | B | I | H | kernel µs | reference µs | speedup | via API µs | of GEMM | vs torch "
             "| threads | vs 1 thread |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.cell} | {r.dtype} | {r.T} | {r.B} | {r.I} | {r.H} | {r.kernel_us:.1f} | "
                     f"{r.reference_us:.1f} | {r.speedup:.1f}x | {r.api_us:.1f} | {r.gemm_fraction:.0%} | "
                     f"{_torch_cell(r)} | {r.threads} | {_scaling_cell(r)} |")
    return "\n".join(lines)
