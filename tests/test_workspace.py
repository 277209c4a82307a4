"""Reused output and tape arrays (fastrnn._workspace): never one that something still refers to."""

import numpy as np

import fastrnn
from fastrnn import _workspace
from fastrnn._workspace import Workspace

# T, B, H with a tape of several megabytes, above the workspace's threshold.
T, B, I, H = 60, 48, 8, 64


def test_a_kept_tape_or_output_is_never_overwritten():
    cell = fastrnn.LSTM(I, H, seed=0)
    twin = fastrnn.LSTM(I, H, seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, T, B, I))
    dy = rng.standard_normal((T, B, H))
    y1, _, tape1 = cell.forward(x1)
    assert y1.nbytes >= _workspace.LARGE
    kept = y1.copy()
    y2, _, tape2 = cell.forward(x2)  # while y1 and tape1 are alive
    np.testing.assert_array_equal(y1, kept)
    grads1, dx1, _ = cell.backward(tape1, dy)
    grads2, dx2, _ = cell.backward(tape2, dy)
    _, _, fresh = twin.forward(x1)
    want, want_dx, _ = twin.backward(fresh, dy)
    np.testing.assert_array_equal(dx1, want_dx)
    for name in want:
        np.testing.assert_array_equal(grads1[name], want[name])
    assert not np.shares_memory(dx1, dx2) and not np.shares_memory(y1, y2)


def test_arrays_nothing_refers_to_are_written_again():
    cell = fastrnn.GRU(I, H, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    y, _, tape = cell.forward(x)
    address = y.ctypes.data
    del y, tape
    y, _, tape = cell.forward(x)
    assert y.ctypes.data == address
    view = y[1:]
    del y, tape
    y, _, tape = cell.forward(x)
    assert y.ctypes.data != address and view.base is not None  # a view keeps its base in use


def test_the_stack_path_gives_the_same_numbers_call_after_call():
    stack = fastrnn.DilatedRNN([fastrnn.GRU(I, H, seed=0), fastrnn.GRU(H, H, seed=1)], [1, 7])  # 7 does not divide T
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    runs = []
    for _ in range(3):
        y, _, tape = stack.forward(x)
        grads, dx, _ = stack.backward(tape, dy)
        runs.append((y.copy(), dx.copy(), {k: g.copy() for k, g in grads.items()}))
        del y, tape, grads, dx
    for y, dx, grads in runs[1:]:
        np.testing.assert_array_equal(y, runs[0][0])
        np.testing.assert_array_equal(dx, runs[0][1])
        for k in grads:
            np.testing.assert_array_equal(grads[k], runs[0][2][k])


def test_small_arrays_are_not_kept_and_the_oldest_large_one_goes_first():
    space = Workspace()
    small = space.empty("a", (4,), np.float64)
    assert not space._arrays
    del small
    shapes = [(_workspace.LARGE // 8 + i,) for i in range(_workspace.SLOTS + 1)]
    arrays = [space.empty("b", shape, np.float64) for shape in shapes]
    assert len(space._arrays) == _workspace.SLOTS and ("b", shapes[0], np.float64) not in space._arrays
    del arrays
    space.clear()
    assert not space._arrays
