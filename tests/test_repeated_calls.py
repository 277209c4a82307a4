"""A cell's repeated calls (see Cell.forward): a call of a shape made before runs the compiled code
Numba's dispatcher chose for that first call, directly, after checking only what can have changed.
These tests check that such calls give exactly the results of checked first calls, and that every
input a repeated call cannot take as it is goes back to the full checks: their errors, their
conversions."""

import numpy as np
import pytest

from fastrnn.kernels._gemm import MR
from fastrnn.kernels._jit import entry_point
from fastrnn.kernels.checks import all_finite_in
from fastrnn.registry import BY_NAME, make_inputs

T, B = 5, 2


@pytest.fixture
def cell(case, dtype):
    return case.make(3, 4, dtype=dtype, seed=0)


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def first_calls(case, dtype, inputs, with_state, truncate):
    """forward + backward by a cell of its own, made for this one call: the full checks."""
    fresh = case.make(3, 4, dtype=dtype, seed=0)
    y, final, tape = fresh.forward(inputs["x"], inputs["state"] if with_state else None)
    grads, dx, dstate = fresh.backward(tape, inputs["dy"], inputs["dstate"] if with_state else None,
                                       truncate=truncate)
    return y, final, grads, dx, dstate


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    elif isinstance(a, tuple):
        for u, w in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, w)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("truncate", [None, 1])
def test_repeated_calls_give_the_results_of_first_calls(case, dtype, cell, with_state, truncate):
    inputs = make_inputs(cell, T, B, seed=1)
    expected = first_calls(case, dtype, inputs, with_state, truncate)
    state, dstate = (inputs["state"], inputs["dstate"]) if with_state else (None, None)
    for _ in range(3):  # the first call checks everything; the next ones repeat it
        y, final, tape = cell.forward(inputs["x"], state)
        grads, dx, dstart = cell.backward(tape, inputs["dy"], dstate, truncate=truncate)
        for got, want in zip((y, final, grads, dx, dstart), expected, strict=True):
            assert_same(got, want)
    repeat = cell._repeat_forward[inputs["x"].shape]
    forward = cell._kernels["forward"][0]
    args = cell._forward_args(inputs["x"], cell._plan(T, B).zeros, cell._plan(T, B).forward.fresh())
    assert repeat.kernel is entry_point(forward, args)  # the code the dispatcher runs for these types
    assert repeat.finite is entry_point(all_finite_in, ((inputs["x"],),))
    assert inputs["x"].shape in cell._repeat_backward


def test_only_the_numba_backends_calls_of_few_rows_are_repeated(case):
    """The numpy backend has no compiled code to repeat; and from 2 MR rows a call may go to the
    threaded twin, chosen at every call (the thread count may change between calls)."""
    reference = case.make(3, 4, seed=0, backend="numpy")
    inputs = make_inputs(reference, T, B, seed=1)
    for _ in range(2):
        reference.backward(reference.forward(inputs["x"])[2], inputs["dy"])
    assert not reference._repeat_forward and not reference._repeat_backward
    cell = case.make(3, 4, seed=0)
    many = make_inputs(cell, 2, 2 * MR, seed=1)
    for _ in range(2):
        cell.backward(cell.forward(many["x"])[2], many["dy"])
    assert not cell._repeat_forward and not cell._repeat_backward


def repeat_ready(cell, inputs):
    for _ in range(2):
        y, final, tape = cell.forward(inputs["x"], inputs["state"])
        cell.backward(tape, inputs["dy"], inputs["dstate"])
    assert cell._repeat_forward and cell._repeat_backward
    return cell.forward(inputs["x"], inputs["state"])


def each(value, change):
    """``change`` applied to an array, or to each part of a state tuple."""
    return tuple(map(change, value)) if isinstance(value, tuple) else change(value)


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def test_a_repeated_call_checks_its_inputs_values(cell):
    inputs = make_inputs(cell, T, B, seed=1)
    _, _, tape = repeat_ready(cell, inputs)
    for name, array in (("x", inputs["x"]), ("state", parts(inputs["state"])[-1]),
                        ("dy", inputs["dy"]), ("dstate", parts(inputs["dstate"])[-1])):
        kept = array[1, 1].copy()
        for bad in (np.nan, np.inf):
            array[1, 1] = bad
            with pytest.raises(ValueError, match=rf"{name}.*contains NaN or infinite values"):
                cell.forward(inputs["x"], inputs["state"])
                cell.backward(tape, inputs["dy"], inputs["dstate"])
        array[1, 1] = kept


def test_a_repeated_call_takes_other_layouts_and_types_through_the_full_checks(case, dtype, cell):
    """Inputs of the repeated shape that are not the plain arrays it was made with: converted
    or refused exactly as on a first call."""
    inputs = make_inputs(cell, T, B, seed=1)
    expected = first_calls(case, dtype, inputs, True, None)
    repeat_ready(cell, inputs)
    other = np.longdouble if dtype == "float64" else np.float64  # a wider dtype: converted back exactly

    def strided(a):  # same values, not C-contiguous
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]

    # Another dtype is converted.
    kernels = [cell._kernels[direction][0] for direction in ("forward", "backward")]
    compiled = [len(kernel.signatures) for kernel in kernels]
    for change in (readonly, strided, np.asfortranarray, lambda a: a.tolist(), lambda a: a.astype(other)):
        for name in inputs:  # one input at a time: the others would take the full checks along
            changed = dict(inputs, **{name: each(inputs[name], change)})
            y, final, tape = cell.forward(changed["x"], changed["state"])
            grads, dx, dstart = cell.backward(tape, changed["dy"], changed["dstate"])
            for got, want in zip((y, final, grads, dx, dstart), expected, strict=True):
                assert_same(got, want)
    # Each was converted to a plain array (a read-only one copied): nothing compiled for it.
    assert [len(kernel.signatures) for kernel in kernels] == compiled
    # Wrong shapes are refused with the full checks' messages.
    with pytest.raises(ValueError, match="x: expected shape"):
        cell.forward(inputs["x"][..., :2], inputs["state"])
    with pytest.raises((ValueError, TypeError), match="state"):
        cell.forward(inputs["x"], parts(inputs["state"])[0][:1])
    with pytest.raises(ValueError, match="dy: expected shape"):
        cell.backward(tape, inputs["dy"][:, :1])


def test_read_only_parameters_take_the_full_checks():
    """Numba types a read-only array apart (and compiles the kernels for it), so calls with a
    read-only parameter are not repeated with the code of plain ones. One cell: the compile takes
    seconds."""
    case = BY_NAME["rnn-tanh"]
    cell = case.make(3, 4, seed=0)
    inputs = make_inputs(cell, T, B, seed=1)
    y, _, _ = repeat_ready(cell, inputs)
    repeat = cell._repeat_forward[inputs["x"].shape]

    def refuse(*args):
        raise AssertionError("a call with a read-only parameter ran the code compiled for plain ones")

    repeat.kernel = refuse
    cell.params["weight_hh"] = readonly(cell.params["weight_hh"])
    for _ in range(2):
        np.testing.assert_array_equal(cell.forward(inputs["x"], inputs["state"])[0], y)


def test_a_tapes_x_reshaped_in_place_is_refused(cell):
    inputs = make_inputs(cell, T, B, seed=1)
    _, _, tape = repeat_ready(cell, inputs)
    x = inputs["x"]
    x.shape = (B, T, x.shape[2])  # the same elements, read as another (T, B)
    with pytest.raises(ValueError, match=r"tape: its x has been reshaped in place since forward"):
        cell.backward(tape, inputs["dy"], inputs["dstate"])
    assert tape.shape == (T, B)


def test_a_repeated_call_sees_replaced_and_rewritten_parameters(cell):
    inputs = make_inputs(cell, T, B, seed=1)
    y, _, _ = repeat_ready(cell, inputs)
    weight = cell.params["weight_hh"]
    cell.params["weight_hh"] = weight * 2.0
    doubled = cell.forward(inputs["x"], inputs["state"])[0]
    assert not np.array_equal(doubled, y)
    cell.params["weight_hh"] = weight
    np.testing.assert_array_equal(cell.forward(inputs["x"], inputs["state"])[0], y)
    weight *= 2.0
    np.testing.assert_array_equal(cell.forward(inputs["x"], inputs["state"])[0], doubled)
    weight /= 2.0
    cell.params = dict(cell.params, weight_hh=weight * 2.0)  # a plain dict: looked up at every call
    np.testing.assert_array_equal(cell.forward(inputs["x"], inputs["state"])[0], doubled)
    cell.params["weight_hh"] = np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"params\['weight_hh'\]"):
        cell.forward(inputs["x"], inputs["state"])


def test_a_call_is_looked_up_for_repeating_once_per_shape(case, monkeypatch):
    """Finding a call's compiled code types all its arguments (tens of µs): done once per shape,
    never for the numpy backend, and not again by calls that take the full checks every time
    (a state given as a list, say)."""
    import fastrnn.cells

    looked_up = []
    monkeypatch.setattr(fastrnn.cells, "entry_point", lambda *args: looked_up.append(args) or entry_point(*args))
    reference = case.make(3, 4, seed=0, backend="numpy")
    inputs = make_inputs(reference, T, B, seed=1)
    for _ in range(3):
        reference.backward(reference.forward(inputs["x"])[2], inputs["dy"])
    assert looked_up == []
    cell = case.make(3, 4, seed=0)
    listed = each(inputs["state"], lambda a: a.tolist())
    for _ in range(3):
        _, _, tape = cell.forward(inputs["x"], listed)
        cell.backward(tape, inputs["dy"], each(inputs["dstate"], lambda a: a.tolist()))
    assert len(looked_up) == 2 * 3  # forward and backward: the kernel and both finiteness checks
