"""Second link of the oracle chain: every kernel against its reference twin.

Pairs ``fastrnn.kernels.<cell>`` with ``fastrnn.reference.<cell>`` through the public cells
(``backend="numba"`` vs ``backend="numpy"``) for every registered cell, dtype, shape, truncation
and with or without initial state / final-state gradient.
"""

import numpy as np
import pytest

import fastrnn.kernels
import fastrnn.reference
from fastrnn.kernels._driver import BLOCK_ROWS

from .helpers import assert_close, assert_pair, run_pair

# (T, B, I, H). The kernels work through the sequence in blocks of BLOCK_ROWS // B steps; the
# last shape has two full blocks and a partial one.
SHAPES = [(1, 1, 2, 3), (5, 1, 3, 3), (7, 3, 4, 5), (16, 4, 9, 7), (2 * (BLOCK_ROWS // 24) + 3, 24, 3, 4)]


def truncations(T):
    return sorted({0, 1, 3, T - 1, T + 2}) + [None]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "state+dstate"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}I{}H{}".format(*s))
def test_kernel_matches_reference(case, shape, dtype, with_state):
    T, B, I, H = shape
    for truncate in truncations(T):
        results = run_pair(case, T, B, I, H, dtype, truncate, with_state)
        assert_pair(results, dtype, f"{case} T={T} B={B} I={I} H={H} k={truncate} {dtype} seed=0")


def test_modules_pair_by_name():
    """Every kernel module has a reference twin with the same public functions."""
    for name in fastrnn.kernels.__all__:
        kernel = getattr(fastrnn.kernels, name)
        reference = getattr(fastrnn.reference, name)
        for function in ("forward", "backward"):
            assert callable(getattr(kernel, function)) and callable(getattr(reference, function))


def test_large_preactivations_stay_finite(case):
    """Pre-activations of ±1e4 must not overflow the activations in either dtype or backend."""
    for dtype in ("float32", "float64"):
        outputs = {}
        for backend in ("numba", "numpy"):
            cell = case.make(2, 3, dtype=dtype, seed=0, backend=backend)
            # Every weight matrix reads only the first feature, so each pre-activation is x[..., 0]
            # (+RNN: through its projection too) plus a bias: ±1e4, saturating every gate.
            for name, param in cell.params.items():
                if name.startswith("weight"):
                    param[...] = 0.0
                    param[:, 0] = 1.0
            x = np.array([[[1e4, 0.3]], [[-1e4, -0.3]], [[0.5, -0.5]], [[1e4, 0.0]]])
            y, state, tape = cell.forward(x)
            grads, dx, dstate = cell.backward(tape, np.ones_like(y))
            for array in (y, dx, *grads.values(), *(dstate if isinstance(dstate, tuple) else (dstate,))):
                assert np.isfinite(array).all(), f"{case} {dtype} {backend}"
            # Saturated activations, or the input itself passed through (+RNN's y, relu): never more.
            assert np.abs(y).max() <= 1e4 + 2, f"{case} {dtype} {backend}"
            outputs[backend] = y
        assert_close(outputs["numba"], outputs["numpy"], dtype, f"{case} {dtype} saturated outputs")
