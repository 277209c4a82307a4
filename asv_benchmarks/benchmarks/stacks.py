"""Stacks (DilatedRNN, Bidirectional layers): numba path and reference time, and their ratio.

Driven by :data:`fastrnn.registry.STACKS`, like ``fastrnn bench``; each stack at its own size.
"""

import numba

from fastrnn.bench import bench_case
from fastrnn.registry import BY_NAME, STACKS, train_step

NAMES = [case.name for case in STACKS]


class TimeStackTrainStep:
    """Forward, backward (full BPTT) and both, of the stack through its public methods."""

    params = (NAMES, ["numba", "numpy"], ["float64", "float32"])
    param_names = ["stack", "backend", "dtype"]

    def setup(self, stack, backend, dtype):
        case = BY_NAME[stack]
        T, B, I, H = case.sizes[0]
        self.step = train_step(case.make(I, H, dtype=dtype, backend=backend), T, B)
        self.step()

    def time_forward_backward(self, stack, backend, dtype):
        self.step()

    def time_forward(self, stack, backend, dtype):
        self.step.forward()

    def time_backward(self, stack, backend, dtype):
        self.step.backward()


class TrackStackSpeedup:
    """Reference time / numba time, both measured in this process (min of interleaved repeats)."""

    params = (NAMES, ["float64", "float32"])
    param_names = ["stack", "dtype"]
    unit = "x"
    number = 1
    repeat = 1

    def track_speedup(self, stack, dtype):
        case = BY_NAME[stack]
        return bench_case(case, case.sizes[0], dtype, repeat=3, min_time=0.01).speedup


class TrackStackThreadScaling:
    """Stack time on one thread over stack time on all of Numba's threads, measured interleaved."""

    params = (NAMES, ["float64", "float32"])
    param_names = ["stack", "dtype"]
    unit = "x"
    number = 1
    repeat = 1

    def setup(self, stack, dtype):
        if numba.config.NUMBA_NUM_THREADS < 2:
            raise NotImplementedError("one Numba thread: nothing to scale over")

    def track_scaling(self, stack, dtype):
        case = BY_NAME[stack]
        return bench_case(case, case.sizes[0], dtype, repeat=3, min_time=0.01,
                          threads=numba.config.NUMBA_NUM_THREADS).scaling
