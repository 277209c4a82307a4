"""First link of the oracle chain: reference gradients against central finite differences (float64).

For ``truncate=None`` and k >= T-1 the loss is the full one. For 0 <= k < T-1 it is the windowed
loss that defines truncation: each output is rolled forward over its own window of at most k
transitions from the state that entered the window, held constant at its unperturbed value
(unless the window starts at step 0, where the initial state is a variable).
"""

import numpy as np
import pytest

from fastrnn.registry import make_inputs

from .helpers import numeric_gradient

T, B = 6, 2
SIZES = [(3, 4), (4, 4)]  # (input_size, hidden_size): I != H and I == H


def _inner(a, b):
    if isinstance(a, tuple):
        return sum(float(np.sum(p * q)) for p, q in zip(a, b))
    return float(np.sum(a * b))


def _copy(state):
    return tuple(s.copy() for s in state) if isinstance(state, tuple) else state.copy()


def entering_states(cell, x, state0):
    """State entering each step s = 0..T-1, from one step-by-step forward with fixed params."""
    states = [state0]
    for s in range(len(x) - 1):
        _, state, _ = cell.forward(x[s:s + 1], states[-1])
        states.append(state)
    return states


def windowed_loss(cell, x, state0, dy, dstate, k, frozen):
    """sum_t <dy_t, y_t> + <dstate, state_T>, each output rolled over its own window."""
    n = len(x)
    if k is None or k >= n - 1:
        y, state, _ = cell.forward(x, state0)
        return _inner(dy, y) + _inner(dstate, state)
    total = 0.0
    for t in range(n):
        first = max(0, t - k)
        start = state0 if first == 0 else frozen[first]
        y, state, _ = cell.forward(x[first:t + 1], start)
        total += _inner(dy[t], y[-1])
        if t == n - 1:
            total += _inner(dstate, state)
    return total


@pytest.mark.parametrize("truncate", [None, 0, 1, 3, T - 1, T + 2], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"I{s[0]}H{s[1]}")
def test_reference_matches_finite_differences(case, sizes, truncate):
    I, H = sizes
    cell = case.make(I, H, seed=3, backend="numpy")
    inputs = make_inputs(cell, T, B, seed=4)
    x, state0, dy, dstate = (inputs[key] for key in ("x", "state", "dy", "dstate"))
    frozen = entering_states(cell, x, state0)

    def loss():
        return windowed_loss(cell, x, state0, dy, dstate, truncate, frozen)

    _, _, tape = cell.forward(x, state0)
    grads, dx, dstate0 = cell.backward(tape, dy, dstate, truncate=truncate)
    what = f"{case} I={I} H={H} T={T} B={B} k={truncate} float64 seed=3/4"
    for name, param in cell.params.items():
        np.testing.assert_allclose(grads[name], numeric_gradient(loss, param), rtol=1e-5, atol=1e-7,
                                   err_msg=f"{what}: d{name}")
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-5, atol=1e-7, err_msg=f"{what}: dx")
    parts = state0 if isinstance(state0, tuple) else (state0,)
    dparts = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
    for i, (part, dpart) in enumerate(zip(parts, dparts)):
        np.testing.assert_allclose(dpart, numeric_gradient(loss, part), rtol=1e-5, atol=1e-7,
                                   err_msg=f"{what}: dstate[{i}]")


def test_truncation_really_cuts(case):
    """Guard against a windowed loss that equals the full one: k=0 must change the gradient."""
    cell = case.make(3, 4, seed=3, backend="numpy")
    inputs = make_inputs(cell, T, B, seed=4)
    _, _, tape = cell.forward(inputs["x"], inputs["state"])
    full, _, _ = cell.backward(tape, inputs["dy"], inputs["dstate"])
    cut, _, _ = cell.backward(tape, inputs["dy"], inputs["dstate"], truncate=0)
    assert not np.allclose(full["weight_hh"], cut["weight_hh"])
