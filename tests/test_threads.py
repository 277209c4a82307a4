"""Threads: the kernels give the same bits whatever the number of Numba threads.

The matrix products split C into blocks shared out over threads (``_gemm._gemm_split``), and the
cells' threaded kernels share each step's batch rows out; nothing is summed across threads, so
every element is computed by the same operations in the same order. The product's partition is
checked here for thread counts this machine may not have (the split function takes the count as
an argument), and whole cells on one and two real threads.
"""

import subprocess
import sys

import numba
import numpy as np
import pytest

from fastrnn._threads import numba_threads
from fastrnn.kernels import _gemm
from fastrnn.layer import leaves
from fastrnn.registry import CASES, make_inputs

from .helpers import DTYPES

# Row counts around the tile height and the chunk, column counts around a panel's edge, and
# narrow C (one panel) where the rows must be split to give each thread work.
SHAPES = [(1, 3, 5), (7, 16, 25), (8, 64, 48), (13, 64, 49), (45, 70, 100), (128, 20, 60), (300, 257, 65),
          (1100, 33, 10), (64, 300, 1024)]


def _product(fn, a, b, bp, c, accumulate, *threads):
    """Call _gemm_core or _gemm_split with B's panels described as _gemm.gemm describes them:
    packed (``bp``), or ``b`` itself in one-vector panels when ``bp`` is None."""
    size = a.itemsize
    if bp is None:
        width = _gemm.VECTOR_BYTES // size
        panels = -(-b.shape[1] // width)
        pb, ldb, step, like = b.ctypes.data, b.strides[0] // size, width, np.empty((0, 0, 0), a.dtype)
    else:
        panels, _, width = bp.shape
        pb, ldb, step, like = bp.ctypes.data, width, b.shape[0] * width, bp
    fn(a.shape[0], a.shape[1], a.ctypes.data, a.strides[0] // size, a.strides[1] // size, pb, ldb, step, panels,
       width, b.shape[1], c.ctypes.data, c.strides[0] // size, accumulate, *threads, like)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "in-place"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_split_product_equals_the_one_thread_product_bit_for_bit(m, k, n, dtype, packed):
    rng = np.random.default_rng(m + 7 * k + 31 * n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bp = _gemm.packed(b) if packed else None
    start = rng.standard_normal((m, n)).astype(dtype)
    for accumulate in (False, True):
        one = start.copy()
        _product(_gemm._gemm_core, a, b, bp, one, accumulate, 1)  # allowed one thread: its own loop
        for threads in (1, 2, 3, 5, 8):
            split = start.copy()
            _product(_gemm._gemm_split, a, b, bp, split, accumulate, threads)
            assert split.tobytes() == one.tobytes(), (accumulate, threads)


two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")


def _run(cell, inputs, truncate):
    y, state, tape = cell.forward(inputs["x"], inputs["state"])
    grads, dx, dstate = cell.backward(tape, inputs["dy"], inputs["dstate"], truncate=truncate)
    return [y, dx, *leaves(state), *leaves(dstate), *grads.values()]


@two_threads
@pytest.mark.parametrize("truncate", [None, 2])
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("size", ["wide", "narrow"])
def test_every_cell_gives_the_same_bits_on_one_and_two_threads(case, dtype, truncate, size):
    if size == "wide":
        # The per-step product h W_hh^T (B x H times H x gates*H, gates >= 1) is split over threads, and
        # on two threads the cell runs its kernels' threaded twins, which share each step's rows out.
        T, I, H, batches = 5, 64, 256, (32, 37)  # chunks of 16 rows each, and of 18 and 19 (not whole tiles)
        assert 32 * H * H * np.dtype(dtype).itemsize >= _gemm.PARALLEL_WORK
    else:
        # Many rows of a narrow cell: the twins run, but each block's products are below the products'
        # own threshold for splitting, so the twins share them out themselves (the input projection
        # by rows, the backward's weight and input gradients side by side).
        T, I, H = 3, 20, 20
        batches = (700, 701) if np.dtype(dtype) == np.float32 else (400, 401)  # enough rows for the twins
        assert batches[1] * 4 * H * max(I, H) * np.dtype(dtype).itemsize < _gemm.PARALLEL_WORK
    cell = case.make(I, H, dtype=dtype, seed=3)
    for B in batches:
        inputs = make_inputs(cell, T, B, seed=4)
        with numba_threads(1):
            assert cell._kernel("forward", B)[1] == "forward"
            one = [a.copy() for a in _run(cell, inputs, truncate)]
        with numba_threads(2):
            assert cell._kernel("forward", B)[1] == "forward threaded"
            assert cell._kernel("backward", B)[1] == "backward threaded"
            two = _run(cell, inputs, truncate)
        for a, b in zip(one, two):
            assert a.tobytes() == b.tobytes(), B


@two_threads
@pytest.mark.parametrize("case", CASES, ids=str)
def test_small_calls_keep_to_the_one_thread_kernels(case):
    # The threaded twins are compiled on first use: calls too small to gain from threads never reach them.
    for I, H, B in ((2, 16, 1), (2, 16, 16), (64, 64, 15), (8, 32, 24)):
        cell = case.make(I, H)
        with numba_threads(2):
            assert cell._kernel("forward", B)[1] == "forward"
            assert cell._kernel("backward", B)[1] == "backward"
    assert case.make(2, 16, backend="numpy")._kernel("forward", 1000)[1] == "forward"


def test_a_fresh_process_runs_cached_kernels_on_one_and_two_threads():
    # Kernels loaded from Numba's cache call the threading layer's thread count by symbol; a process
    # that loads them without compiling anything must have that layer loaded (it crashed otherwise).
    code = ("import numpy as np, numba, fastrnn\n"
            "cell = fastrnn.LSTM(64, 256)\n"
            "for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):\n"
            "    numba.set_num_threads(n)\n"
            "    y, state, tape = cell.forward(np.ones((3, 32, 64)))\n"
            "    cell.backward(tape, np.ones_like(y))\n"
            "print('ok')\n")
    for _ in range(2):  # the first run may compile; the second loads everything from the cache
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "ok"


def test_importing_fastrnn_loads_no_threading_layer():
    # The first OpenMP runtime a process loads is the one every later library gets: PyTorch imported
    # after Numba had loaded the system's GNU OpenMP ran 15x slower on two threads. So the layer is
    # loaded with the first kernel (compiled or loaded from the cache), not by the import.
    code = "import fastrnn, fastrnn._threads as t; print(t.threading_layer())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("not started yet"), out.stdout
