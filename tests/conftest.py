"""Shared test helpers: tolerances (one place, per dtype) and readable ids."""

import numpy as np
import pytest

from fastrnn.registry import CASES

# Tolerance of a kernel-vs-reference comparison, relative to the magnitude of the compared
# values. Both sides use the same formulas in a different summation order (GEMMs against
# per-step products), so the difference is a few ulp times the number of summed terms.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-4}


def assert_close(actual, desired, dtype, what):
    """Compare arrays with the tolerance of ``dtype``, scaled by the magnitude of ``desired``."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_state_close(actual, desired, dtype, what):
    if isinstance(desired, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(desired), what
        for i, (a, d) in enumerate(zip(actual, desired)):
            assert_close(a, d, dtype, f"{what}[{i}]")
    else:
        assert_close(actual, desired, dtype, what)


@pytest.fixture(params=CASES, ids=str)
def case(request):
    return request.param
