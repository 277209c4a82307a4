"""The kernels' own activation functions against NumPy: a few ulp over a dense range, finite anywhere."""

import numba
import numpy as np
import pytest

from fastrnn.kernels import _math
from fastrnn.reference._common import sigmoid as reference_sigmoid


@numba.njit
def _apply(kind, a):
    out = np.empty_like(a)
    for i in range(a.size):
        if kind == 0:
            out[i] = _math.tanh(a[i])
        elif kind == 1:
            out[i] = _math.sigmoid(a[i])
        else:
            out[i] = _math.relu(a[i])
    return out


def _points(dtype):
    dense = np.linspace(-40, 40, 400_001)
    wide = np.linspace(-800, 800, 160_001)  # exp underflows below -745
    tiny = np.geomspace(1e-300 if dtype == np.float64 else 1e-37, 1.0, 20_001)
    huge = np.array([1e4, 1e5, 1e300 if dtype == np.float64 else 3e38])
    return np.concatenate([dense, wide, tiny, -tiny, huge, -huge, [0.0]]).astype(dtype)


def _ulps(actual, desired):
    spacing = np.spacing(np.maximum(np.abs(desired), np.finfo(desired.dtype).tiny))
    return np.abs(actual.astype(np.float64) - desired.astype(np.float64)) / spacing.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, name, oracle", [(0, "tanh", np.tanh), (1, "sigmoid", reference_sigmoid)])
def test_activation_within_a_few_ulp(dtype, kind, name, oracle):
    a = _points(dtype)
    got = _apply(kind, a)
    assert got.dtype == dtype and np.isfinite(got).all(), name
    # The oracle in float64 (NumPy's own float32 functions are not correctly rounded either).
    want = oracle(a.astype(np.float64)).astype(dtype)
    worst = _ulps(got, want).max()
    # Each dtype is computed in its own arithmetic (float32 in float32, degree-7 polynomial), so
    # the bound is in ulp of that dtype: a few roundings of the range reduction and the division.
    assert worst <= (4 if dtype == np.float64 else 3), f"{name} {np.dtype(dtype).name}: {worst} ulp"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_python_definitions_and_compiled_code_agree_bit_for_bit(dtype):
    """The plain-Python definitions (what NUMBA_DISABLE_JIT=1 runs) and the intrinsics emit the
    same operations in the same order, in the argument's dtype."""
    a = np.concatenate([_points(dtype)[::61], [np.nan]]).astype(dtype)
    bits = np.uint64 if dtype == np.float64 else np.uint32
    for kind, definition in [(0, _math._tanh_python), (1, _math._sigmoid_python), (2, _math._relu_python)]:
        python = np.array([definition(value) for value in a])
        assert python.dtype == dtype, definition.__name__
        np.testing.assert_array_equal(python.view(bits), _apply(kind, a).view(bits), err_msg=definition.__name__)


@numba.njit
def _first(a):
    return _math.sigmoid(a[0]), _math.tanh(a[0]), _math.relu(a[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_activation_returns_its_argument_s_dtype(dtype):
    _first(np.zeros(1, dtype))
    (signature,) = [s for s in _first.nopython_signatures if s.args[0].dtype == numba.from_dtype(dtype)]
    assert signature.return_type == numba.types.UniTuple(numba.from_dtype(dtype), 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturation_at_large_arguments(dtype):
    a = np.array([1e4, -1e4], dtype)
    np.testing.assert_array_equal(_apply(0, a), [1.0, -1.0])
    np.testing.assert_array_equal(_apply(1, a), [1.0, 0.0])
    np.testing.assert_array_equal(_apply(2, a), [1e4, 0.0])


def test_nan_propagates():
    a = np.array([np.nan])
    assert np.isnan(_apply(0, a)).all() and np.isnan(_apply(1, a)).all()
