"""Kernel and reference time of every registered cell, and their ratio.

Driven by :mod:`fastrnn.registry`, like the tests. asv runs each benchmark in a new process;
``setup`` makes the first call, so compilation (or loading Numba's on-disk cache) is not timed.
"""

import numba

from fastrnn.bench import bench_case
from fastrnn.registry import CASES, CELL_SIZES, train_step

CELLS = [case.name for case in CASES]
# (T, B, I, H) as the registry gives them: the binary-addition network, a long thin sequence, a
# mid-sized batch, a large one.
SIZES = ["x".join(map(str, size)) for size in CELL_SIZES]


def _case(cell):
    return next(case for case in CASES if case.name == cell)


def _size(text):
    return tuple(int(p) for p in text.split("x"))


def _step(cell, backend, dtype, size):
    T, B, I, H = _size(size)
    step = train_step(_case(cell).make(I, H, dtype=dtype, backend=backend), T, B)
    step()  # compiles, or loads Numba's on-disk cache
    return step


class TimeTrainStep:
    """One forward + backward (full BPTT) through the kernel or the reference."""

    params = (CELLS, ["numba", "numpy"], ["float64", "float32"], SIZES)
    param_names = ["cell", "backend", "dtype", "size"]

    def setup(self, cell, backend, dtype, size):
        self.step = _step(cell, backend, dtype, size)

    def time_forward_backward(self, cell, backend, dtype, size):
        self.step()


class TimeHalves:
    """Forward and backward apart, at the mid and the large size (asv starts a process per
    parameter set, so the full grid again would double the suite's time for little news)."""

    params = (CELLS, ["numba", "numpy"], ["float64", "float32"], SIZES[2:])
    param_names = ["cell", "backend", "dtype", "size"]

    def setup(self, cell, backend, dtype, size):
        self.step = _step(cell, backend, dtype, size)

    def time_forward(self, cell, backend, dtype, size):
        self.step.forward()

    def time_backward(self, cell, backend, dtype, size):
        self.step.backward()


class TrackSpeedup:
    """Reference time / kernel time, both measured in this process (min of interleaved repeats)."""

    params = (CELLS, ["float64", "float32"], SIZES)
    param_names = ["cell", "dtype", "size"]
    unit = "x"
    number = 1
    repeat = 1

    def track_speedup(self, cell, dtype, size):
        return bench_case(_case(cell), _size(size), dtype, repeat=3, min_time=0.01).speedup


class TrackThreadScaling:
    """Kernel time on one thread over kernel time on all of Numba's threads (NUMBA_NUM_THREADS),
    measured interleaved in this process, at the large size (where the products are split)."""

    params = (CELLS, ["float64", "float32"], SIZES[3:])
    param_names = ["cell", "dtype", "size"]
    unit = "x"
    number = 1
    repeat = 1

    def setup(self, cell, dtype, size):
        if numba.config.NUMBA_NUM_THREADS < 2:
            raise NotImplementedError("one Numba thread: nothing to scale over")

    def track_scaling(self, cell, dtype, size):
        return bench_case(_case(cell), _size(size), dtype, repeat=3, min_time=0.01,
                          threads=numba.config.NUMBA_NUM_THREADS).scaling
