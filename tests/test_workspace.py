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


# T, B, I, H of a tiny call, whose outputs are recycled by _workspace.Outputs.
TINY = 8, 1, 2, 16


def test_tiny_outputs_are_reused_only_once_nothing_refers_to_them():
    T, B, I, H = TINY
    cell = fastrnn.LSTM(I, H, seed=0)
    twin = fastrnn.LSTM(I, H, seed=0)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((5, T, B, I))
    dy = rng.standard_normal((T, B, H))
    held = []  # every result of every call, kept: none may be overwritten by a later call
    for x in xs:
        y, state, tape = cell.forward(x)
        grads, dx, dstate = cell.backward(tape, dy)
        held.append((y, state, grads, dx, dstate))
    for x, (y, (h, c), grads, dx, (dh, dc)) in zip(xs, held):
        want_y, (want_h, want_c), want_tape = twin.forward(x)
        want_grads, want_dx, (want_dh, want_dc) = twin.backward(want_tape, dy)
        for got, want in [(y, want_y), (h, want_h), (c, want_c), (dx, want_dx), (dh, want_dh), (dc, want_dc)]:
            np.testing.assert_array_equal(got, want)
        for name in want_grads:
            np.testing.assert_array_equal(grads[name], want_grads[name])


def test_tiny_outputs_nothing_refers_to_are_written_again():
    T, B, I, H = TINY
    cell = fastrnn.GRU(I, H, seed=0)
    x, dy = np.random.default_rng(0).standard_normal((T, B, I)), np.ones((T, B, H))
    addresses = set()
    y, h, tape = cell.forward(x)
    grads, dx, dh = cell.backward(tape, dy)
    first = y.copy(), dx.copy(), grads["weight_hh"].copy()
    for _ in range(4):  # a training loop: the last call's results are still bound while calling
        y, h, tape = cell.forward(x)
        grads, dx, dh = cell.backward(tape, dy)
        addresses.add((y.ctypes.data, dx.ctypes.data))
        np.testing.assert_array_equal(y, first[0])
        np.testing.assert_array_equal(dx, first[1])
        np.testing.assert_array_equal(grads["weight_hh"], first[2])
    assert len(addresses) == 2  # two sets used in turn
    view = y[1:]
    for _ in range(2):
        y, h, tape = cell.forward(2 * x)
    assert np.array_equal(view, first[0][1:])  # a view keeps its base's set in use


def test_only_tiny_sets_of_outputs_are_recycled():
    float64 = np.dtype(np.float64)
    assert _workspace.Outputs([(_workspace.TINY // 8,)], float64)._sets is not None
    large = _workspace.Outputs([(_workspace.TINY // 8 + 1,)], float64)
    assert large._sets is None
    first = large.take()[0]
    address = first.ctypes.data
    assert all(large.take()[0].ctypes.data != address for _ in range(3))  # first is still alive
