"""The contract of every cell, as Cell.forward and Cell.backward document it: chunking, no mutation,
dtypes, repeatable backward."""

import numpy as np

from fastrnn.registry import make_inputs

from .helpers import assert_state_close


def _snapshot(value):
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_snapshot(v) for v in value)
    return np.array(value, copy=True)


def _assert_same(before, after, what):
    if isinstance(before, dict):
        for k in before:
            _assert_same(before[k], after[k], f"{what}[{k}]")
    elif isinstance(before, tuple):
        for i, (b, a) in enumerate(zip(before, after)):
            _assert_same(b, a, f"{what}[{i}]")
    else:
        np.testing.assert_array_equal(before, after, err_msg=f"{what} was modified")


def test_chunked_forward_equals_one_call(case, backend, dtype):
    cell = case.make(3, 5, dtype=dtype, seed=1, backend=backend)
    inputs = make_inputs(cell, 11, 2, seed=2)
    y, final, _ = cell.forward(inputs["x"], inputs["state"])
    state, pieces = inputs["state"], []
    for lo, hi in [(0, 4), (4, 5), (5, 11)]:
        piece, state, _ = cell.forward(inputs["x"][lo:hi], state)
        pieces.append(piece)
    # Same arithmetic on the same numbers in the same order: equal to the last bit.
    np.testing.assert_array_equal(np.concatenate(pieces), y)
    assert_state_close(state, final, dtype, f"{case} chunked final state")


def test_no_call_mutates_its_inputs(case, backend):
    cell = case.make(3, 4, seed=1, backend=backend)
    inputs = make_inputs(cell, 6, 2, seed=2)
    before_inputs, before_params = _snapshot(inputs), _snapshot(cell.params)
    y, final, tape = cell.forward(inputs["x"], inputs["state"])
    for truncate in (None, 0, 2):
        cell.backward(tape, inputs["dy"], inputs["dstate"], truncate=truncate)
    _assert_same(before_inputs, _snapshot(inputs), f"{case} inputs")
    _assert_same(before_params, _snapshot(cell.params), f"{case} params")


def test_outputs_have_the_cell_dtype_and_backward_repeats(case, backend, dtype):
    cell = case.make(3, 4, dtype=dtype, seed=1, backend=backend)
    x = np.arange(24).reshape(4, 2, 3)  # integer input is converted
    y, final, tape = cell.forward(x)
    first = cell.backward(tape, np.ones_like(y), truncate=1)
    second = cell.backward(tape, np.ones_like(y), truncate=1)
    grads, dx, dstate = first
    for array in (y, dx, *grads.values(), *(final if isinstance(final, tuple) else (final,)),
                  *(dstate if isinstance(dstate, tuple) else (dstate,))):
        assert array.dtype == np.dtype(dtype)
    _assert_same(_snapshot(first[0]), _snapshot(second[0]), "grads of a repeated backward")
    np.testing.assert_array_equal(first[1], second[1])


def test_non_contiguous_input_is_accepted(case):
    cell = case.make(3, 4, seed=1)
    inputs = make_inputs(cell, 5, 2, seed=2)
    wide = np.zeros((5, 2, 6))
    wide[:, :, ::2] = inputs["x"]
    y1, s1, _ = cell.forward(wide[:, :, ::2])
    y2, s2, _ = cell.forward(inputs["x"])
    np.testing.assert_array_equal(y1, y2)


def test_float32_close_to_float64(case, backend):
    cells = {d: case.make(3, 6, dtype=d, seed=5, backend=backend) for d in ("float32", "float64")}
    inputs = make_inputs(cells["float64"], 9, 3, seed=6)
    out = {}
    for d, cell in cells.items():
        y, final, tape = cell.forward(inputs["x"], inputs["state"])
        grads, dx, _ = cell.backward(tape, inputs["dy"], inputs["dstate"], truncate=3)
        out[d] = (y, grads, dx)
    y32, g32, dx32 = out["float32"]
    y64, g64, dx64 = out["float64"]
    # float32 rounding of parameters and inputs (~6e-8 relative), amplified over 9 steps.
    np.testing.assert_allclose(y32, y64, rtol=0, atol=1e-5 * max(1, np.abs(y64).max()))
    for name in g64:
        scale = max(1.0, np.abs(g64[name]).max())
        np.testing.assert_allclose(g32[name], g64[name], rtol=0, atol=1e-4 * scale, err_msg=f"{case} {name}")
    np.testing.assert_allclose(dx32, dx64, rtol=0, atol=1e-4 * max(1.0, np.abs(dx64).max()))


def test_seed_makes_initialisation_reproducible(case):
    H = 4
    a, b, c = (case.make(3, H, seed=s) for s in (7, 7, 8))
    forget_rows = np.zeros(a.params["bias_ih"].shape, bool)
    for block in a._forget_blocks:
        forget_rows[block * H:(block + 1) * H] = True
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
        general = a.params[name][~forget_rows] if name == "bias_ih" else a.params[name]
        assert np.all(np.abs(general) <= 1 / np.sqrt(H)), name
    np.testing.assert_array_equal(a.params["bias_ih"][forget_rows], 1.0)
    assert any(not np.array_equal(a.params[n], c.params[n]) for n in a.params)
    assert all(p.flags.c_contiguous for p in a.params.values())


def test_params_are_live(case):
    cell = case.make(3, 4, seed=1)
    x = make_inputs(cell, 4, 2, seed=2)["x"]
    y1, _, _ = cell.forward(x)
    cell.params["weight_hh"][...] = 0.0
    y2, _, _ = cell.forward(x)
    assert not np.array_equal(y1, y2)


def test_dstate_returned_for_zero_initial_state(case):
    cell = case.make(3, 4, seed=1)
    y, _, tape = cell.forward(make_inputs(cell, 3, 2, seed=2)["x"])
    _, _, dstate = cell.backward(tape, np.ones_like(y))
    parts = dstate if isinstance(dstate, tuple) else (dstate,)
    assert all(p.shape == (2, 4) and np.abs(p).sum() > 0 for p in parts)
