"""Side-by-side timing of kernels and their NumPy references, in one process.

Speed is reported as ratios: absolute times drift on shared machines, a ratio measured in one
run with interleaved repeats much less so.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from .registry import BY_NAME, CASES, STACKS, api_step, make_inputs, train_step


@dataclass
class BenchRow:
    cell: str
    dtype: str
    T: int
    B: int
    I: int
    H: int
    truncate: object
    kernel_us: float
    reference_us: float
    api_us: float

    @property
    def speedup(self):
        return self.reference_us / self.kernel_us

    def as_dict(self):
        return {**asdict(self), "speedup": self.speedup}


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


def bench_case(case, size, dtype="float64", truncate=None, repeat=5, min_time=0.02, seed=0):
    """Time one forward+backward of ``case`` at ``size`` = (T, B, I, H) on both backends.

    For a stack, "kernel" is the whole stack on the numba backend through its public methods
    (the cells' kernels plus the interleaving around them), so it equals "via API".
    """
    T, B, I, H = size
    fast = case.make(I, H, dtype=dtype, seed=seed, backend="numba")
    slow = case.make(I, H, dtype=dtype, seed=seed, backend="numpy")
    kernel_step = train_step(fast, T, B, seed, truncate)
    reference_step = train_step(slow, T, B, seed, truncate)
    api = api_step(fast, make_inputs(fast, T, B, seed), truncate)
    steps = (kernel_step, reference_step, api)
    numbers = [calibrate(step, min_time) for step in steps]
    best = [np.inf] * len(steps)
    # Interleave the three so that drift in the machine's speed hits them alike.
    for _ in range(repeat):
        for i, (step, number) in enumerate(zip(steps, numbers)):
            best[i] = min(best[i], per_call(step, number))
    kernel, reference, api = best
    return BenchRow(case.name, np.dtype(dtype).name, T, B, I, H, truncate,
                    kernel * 1e6, reference * 1e6, api * 1e6)


def run(cells=None, sizes=None, dtypes=("float64",), truncate=None, repeat=5, min_time=0.02,
        progress=None):
    """Benchmark every requested cell or stack, size and dtype; returns a list of :class:`BenchRow`.

    ``sizes=None`` times each registry case at its own sizes (``case.sizes``).
    """
    cases = CASES + STACKS if not cells else [BY_NAME[name] for name in cells]
    rows = []
    for case in cases:
        for dtype in dtypes:
            for size in sizes or case.sizes:
                row = bench_case(case, size, dtype, truncate, repeat, min_time)
                rows.append(row)
                if progress:
                    progress(row)
    return rows


HEADER = (f"{'cell':<18} {'dtype':<8} {'T':>4} {'B':>4} {'I':>4} {'H':>4}  "
          f"{'kernel µs':>10} {'reference µs':>13} {'speedup':>8} {'via API µs':>11}")


def format_row(row):
    return (f"{row.cell:<18} {row.dtype:<8} {row.T:>4} {row.B:>4} {row.I:>4} {row.H:>4}  "
            f"{row.kernel_us:>10.1f} {row.reference_us:>13.1f} {row.speedup:>7.1f}x {row.api_us:>11.1f}")


def format_markdown(rows):
    lines = ["| cell | dtype | T | B | I | H | kernel µs | reference µs | speedup | via API µs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.cell} | {r.dtype} | {r.T} | {r.B} | {r.I} | {r.H} | {r.kernel_us:.1f} | "
                     f"{r.reference_us:.1f} | {r.speedup:.1f}x | {r.api_us:.1f} |")
    return "\n".join(lines)
