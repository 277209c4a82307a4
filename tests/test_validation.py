"""Bad input gets a clear error naming the argument, the expected and the actual value."""

import copy
import pickle

import numpy as np
import pytest

import fastrnn
from fastrnn.registry import make_inputs


@pytest.fixture
def cell(case):
    return case.make(3, 4, seed=0)


@pytest.fixture
def run(cell):
    inputs = make_inputs(cell, 5, 2, seed=1)
    y, state, tape = cell.forward(inputs["x"], inputs["state"])
    return inputs, y, tape


def test_constructor_arguments():
    with pytest.raises(TypeError, match="input_size: expected a positive int, got float 3.0"):
        fastrnn.RNN(3.0, 4)
    with pytest.raises(ValueError, match="hidden_size: expected a positive int, got 0"):
        fastrnn.RNN(3, 0)
    with pytest.raises(TypeError, match="input_size.*bool"):
        fastrnn.RNN(True, 4)
    with pytest.raises(TypeError, match="dtype: expected 'float32' or 'float64', got 'int64'"):
        fastrnn.RNN(3, 4, dtype="int64")
    with pytest.raises(TypeError, match="dtype"):
        fastrnn.RNN(3, 4, dtype="no-such-type")
    with pytest.raises(ValueError, match="backend: expected one of 'numba', 'numpy', got 'torch'"):
        fastrnn.RNN(3, 4, backend="torch")
    with pytest.raises(ValueError, match="nonlinearity: expected one of 'tanh', 'relu', 'sigmoid', got 'gelu'"):
        fastrnn.RNN(3, 4, nonlinearity="gelu")


def test_x_wrong_ndim(cell):
    with pytest.raises(ValueError,
                       match=r"x: expected a 3-d array of shape \(\*, \*, 3\).*got a 2-d array of shape \(5, 3\)"):
        cell.forward(np.zeros((5, 3)))


def test_x_wrong_input_size(cell):
    with pytest.raises(ValueError, match=r"x: expected shape \(\*, \*, 3\) \(T, B, input_size\), got \(5, 2, 4\)"):
        cell.forward(np.zeros((5, 2, 4)))


def test_x_empty_sequence(cell):
    with pytest.raises(ValueError, match=r"x: expected shape .* got \(0, 2, 3\)"):
        cell.forward(np.zeros((0, 2, 3)))


@pytest.mark.parametrize("bad", [np.zeros((2, 1, 3), complex), np.zeros((2, 1, 3), bool),
                                 np.array([[["a", "b", "c"]]]), np.empty((2, 1, 3), object)],
                         ids=["complex", "bool", "str", "object"])
def test_x_non_float_dtype(cell, bad):
    with pytest.raises(TypeError, match=f"x: expected real floating-point .*got dtype {bad.dtype.name}"):
        cell.forward(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_x_non_finite(cell, value):
    x = np.zeros((3, 1, 3))
    x[1, 0, 2] = value
    with pytest.raises(ValueError, match="x: contains NaN or infinite values"):
        cell.forward(x)


def test_state_wrong_shape(cell):
    x = np.zeros((3, 2, 3))
    if len(cell._state_names) > 1:
        with pytest.raises(TypeError, match="state: expected a tuple"):
            cell.forward(x, np.zeros((2, 4)))
        return
    with pytest.raises(ValueError, match=r"state: expected shape \(2, 4\) \(batch, hidden_size\), got \(3, 4\)"):
        cell.forward(x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"state: expected a 2-d array .*got a 3-d array of shape \(1, 2, 4\)"):
        cell.forward(x, np.zeros((1, 2, 4)))  # PyTorch's (layers, B, H) layout


def test_state_non_finite(cell):
    state = make_inputs(cell, 3, 2, seed=0)["state"]
    parts = list(state) if isinstance(state, tuple) else [state]
    parts[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="state.*NaN"):
        cell.forward(np.zeros((3, 2, 3)), tuple(parts) if isinstance(state, tuple) else parts[0])


def test_dy_wrong_shape(cell, run):
    _, y, tape = run
    with pytest.raises(ValueError,
                       match=r"dy: expected shape \(5, 2, 4\) \(T, B, output_size of the tape\), got \(5, 2, 3\)"):
        cell.backward(tape, np.zeros((5, 2, 3)))


def test_dy_non_finite(cell, run):
    _, y, tape = run
    dy = np.ones_like(y)
    dy[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="dy: contains NaN or infinite values"):
        cell.backward(tape, dy)


def test_dstate_wrong_shape(cell, run):
    _, y, tape = run
    if len(cell._state_names) > 1:
        bad = tuple(np.zeros((2, 5)) for _ in cell._state_names)
    else:
        bad = np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"dstate.*expected shape \(2, 4\).*got \(2, 5\)"):
        cell.backward(tape, np.ones_like(y), bad)


@pytest.mark.parametrize("bad, error, message", [
    (-1, ValueError, "truncate: expected None or an int >= 0, got -1"),
    (True, TypeError, "truncate: expected None or an int >= 0, got bool True"),
    (2.0, TypeError, "truncate: expected None or an int >= 0, got float 2.0"),
    ("3", TypeError, "truncate: expected None or an int >= 0, got str '3'"),
])
def test_truncate_rejected(cell, run, bad, error, message):
    _, y, tape = run
    with pytest.raises(error, match=message):
        cell.backward(tape, np.ones_like(y), truncate=bad)


def test_numpy_integer_truncate_accepted(cell, run):
    _, y, tape = run
    a = cell.backward(tape, np.ones_like(y), truncate=np.int64(2))
    b = cell.backward(tape, np.ones_like(y), truncate=2)
    np.testing.assert_array_equal(a[1], b[1])


def test_tape_from_another_cell(case, run):
    _, y, tape = run
    other = case.make(3, 4, seed=0)
    with pytest.raises(ValueError, match="tape: it was made by another cell"):
        other.backward(tape, np.ones_like(y))
    with pytest.raises(TypeError, match="tape: expected the Tape returned by forward, got dict"):
        other.backward({}, np.ones_like(y))


def test_params_are_checked_again_after_a_call(cell):
    """The cell skips re-checking parameters it has already seen: it keeps its own views of their
    memory. Values written into an array reach the kernels; a shape or dtype set on the array
    object in place changes nothing the cell computes (the kernels never read it under another
    layout); a replaced array is checked at the next call, and a good replacement is used."""
    x = np.random.default_rng(0).standard_normal((3, 1, 3))
    y, _, _ = cell.forward(x)
    weight = cell.params["weight_hh"]
    rows = weight.shape[0]
    weight.shape = (rows * 4,)
    np.testing.assert_array_equal(cell.forward(x)[0], y)
    weight.dtype = np.float32  # (rows * 8,) of float32 over the same bytes
    np.testing.assert_array_equal(cell.forward(x)[0], y)
    weight.dtype = np.float64
    weight *= 2.0  # in place, through the reshaped array object: the values reach the kernels
    doubled, _, _ = cell.forward(x)
    assert not np.array_equal(doubled, y)
    weight /= 2.0
    np.testing.assert_array_equal(cell.forward(x)[0], y)
    weight.shape = (rows, 4)
    cell.params["weight_hh"] = weight.astype(np.float32)
    with pytest.raises(ValueError, match=r"params\['weight_hh'\]: expected a float64 array"):
        cell.forward(x)
    cell.params["weight_hh"] = weight.reshape(rows * 4)
    with pytest.raises(ValueError, match=rf"params\['weight_hh'\]: expected a float64 array of shape \({rows}, 4\)"):
        cell.forward(x)
    cell.params["weight_hh"] = weight * 2.0
    np.testing.assert_array_equal(cell.forward(x)[0], doubled)
    cell.params["weight_hh"] = weight
    np.testing.assert_array_equal(cell.forward(x)[0], y)


def test_replaced_param_with_wrong_shape(cell):
    rows = cell.params["weight_hh"].shape[0]  # H times the number of gate blocks
    cell.params["weight_hh"] = np.zeros((4, 5))
    with pytest.raises(ValueError, match=rf"params\['weight_hh'\]: expected a float64 array of shape \({rows}, 4\), "
                                         rf"got float64 array of shape \(4, 5\)"):
        cell.forward(np.zeros((3, 1, 3)))


def test_params_replaced_through_any_dict_method_are_seen(cell):
    """Parameters count their changes: an array replaced by update, setdefault, |=, or a whole new
    plain dict, is checked and used at the next call."""
    x = np.random.default_rng(0).standard_normal((3, 1, 3))
    y, _, _ = cell.forward(x)
    weight = cell.params["weight_hh"]
    cell.params.update(weight_hh=weight * 2.0)
    doubled, _, _ = cell.forward(x)
    assert not np.array_equal(doubled, y)
    cell.params |= {"weight_hh": weight}
    np.testing.assert_array_equal(cell.forward(x)[0], y)
    cell.params |= {"weight_hh": weight.astype(np.float32)}
    with pytest.raises(ValueError, match=r"params\['weight_hh'\]: expected a float64 array"):
        cell.forward(x)
    cell.params = dict(cell.params, weight_hh=weight * 2.0)  # a plain dict: looked up at every call
    np.testing.assert_array_equal(cell.forward(x)[0], doubled)
    cell.params["weight_hh"] = weight
    np.testing.assert_array_equal(cell.forward(x)[0], y)
    del cell.params["weight_hh"]
    with pytest.raises(ValueError, match=r"params\['weight_hh'\]: expected a float64 array"):
        cell.forward(x)


def test_an_rnn_nonlinearity_is_fixed_at_construction():
    cell = fastrnn.RNN(2, 3, "relu")
    with pytest.raises(AttributeError):
        cell.nonlinearity = "tanh"
    assert cell.nonlinearity == "relu" and cell.describe()["nonlinearity"] == "relu"


def test_parameters_copy_and_pickle_as_parameters():
    params = fastrnn.GRU(2, 3, seed=0).params
    params["weight_hh"] = params["weight_hh"] * 1.0
    for twin in (copy.deepcopy(params), pickle.loads(pickle.dumps(params))):
        assert type(twin) is type(params)
        np.testing.assert_array_equal(twin["weight_hh"], params["weight_hh"])
        before = twin.version
        twin["weight_hh"] = twin["weight_hh"] * 2.0
        assert twin.version != before
