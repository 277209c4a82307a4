"""DilatedRNN and Bidirectional (their class docstrings): the oracle chain, the state contract and validation.

The NumPy backend of a stack is :mod:`fastrnn.reference.dilated`, the direct recurrence over
h_{t-d}, one step at a time; the numba backend interleaves the d chains into the cells' kernels.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
from fastrnn.registry import BY_CELL_NAME, StackCase, make_inputs

from .helpers import (
    DTYPES,
    assert_close,
    numeric_gradient,
    run_pair,  # a StackCase builds like a CellCase
)

# Layer recipes: (cell case, or a (forward, backward) pair for a bidirectional layer; dilation).
RECIPES = [
    StackCase("plain", (("gru", 1), ("lstm", 1))),
    StackCase("1-2-4", (("rnn-tanh", 1), ("gru", 2), ("ugrnn", 4))),
    StackCase("3-7", (("irnn", 3), ("lstm", 7))),
    StackCase("bidirectional", ((("gru", "rnn-relu"), 2), ("irnn", 3))),
    StackCase("bidirectional-top", (("lstm", 1), (("ugrnn", "lstm"), 4))),
]
UNIDIRECTIONAL = [r for r in RECIPES if not r.name.startswith("bidirectional")]


def leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for part in tree for leaf in leaves(part)]
    return [tree]


def inner(a, b):
    return sum(float(np.sum(p * q)) for p, q in zip(leaves(a), leaves(b)))


def assert_pair(results, dtype, what):
    (y, final, grads, dx, d0), (ry, rfinal, rgrads, rdx, rd0) = results
    assert_close(y, ry, dtype, f"{what}: y")
    assert grads.keys() == rgrads.keys(), what
    for name in rgrads:
        assert_close(grads[name], rgrads[name], dtype, f"{what}: grads[{name}]")
    assert_close(dx, rdx, dtype, f"{what}: dx")
    for label, ours, theirs in (("final state", final, rfinal), ("dstate", d0, rd0)):
        assert len(leaves(ours)) == len(leaves(theirs)), what
        for i, (a, b) in enumerate(zip(leaves(ours), leaves(theirs))):
            assert_close(a, b, dtype, f"{what}: {label} leaf {i}")


# -- second link: the fast path against the reference -------------------------------------------

@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "state+dstate"])
@pytest.mark.parametrize("T", [1, 5, 9], ids=lambda T: f"T{T}")
@pytest.mark.parametrize("recipe", RECIPES, ids=str)
def test_stack_matches_reference(recipe, T, dtype, with_state):
    B, I, H = 2, 3, 4
    for truncate in (None, 0, 1, 3):
        results = run_pair(recipe, T, B, I, H, dtype, truncate, with_state)
        dilations = [d for _, d in recipe.layers]
        assert_pair(results, dtype, f"{recipe} dilations={dilations} T={T} B={B} I={I} H={H} k={truncate} "
                                    f"{dtype} seed=0")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(sorted(BY_CELL_NAME)), min_size=1, max_size=3),
    dilations=st.lists(st.integers(1, 9), min_size=3, max_size=3),
    T=st.integers(1, 10),
    B=st.integers(1, 3),
    truncate=st.one_of(st.none(), st.integers(0, 4)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_any_dilations_match_reference(kinds, dilations, T, B, truncate, dtype, seed):
    recipe = StackCase("random", tuple(zip(kinds, dilations)))
    results = run_pair(recipe, T, B, 2, 3, dtype, truncate, with_state=True, seed=seed)
    assert_pair(results, dtype, f"{kinds} dilations={dilations[:len(kinds)]} T={T} B={B} k={truncate} {dtype} "
                                f"seed={seed}")


# -- first link: the reference against finite differences (float64) ----------------------------

@pytest.mark.parametrize("recipe", [RECIPES[1], RECIPES[2], RECIPES[3]], ids=str)
def test_reference_stack_matches_finite_differences(recipe):
    """Full loss sum_t <dy_t, y_t> + <dS', S'> of a whole stack, truncate None and k >= T-1."""
    T, B = 5, 2
    stack = recipe.make(2, 3, seed=3, backend="numpy")
    inputs = make_inputs(stack, T, B, seed=4)
    x, state, dy, dstate = (inputs[k] for k in ("x", "state", "dy", "dstate"))

    def loss():
        y, final, _ = stack.forward(x, state)
        return inner(dy, y) + inner(dstate, final)

    _, _, tape = stack.forward(x, state)
    for truncate in (None, T - 1):
        grads, dx, dstate0 = stack.backward(tape, dy, dstate, truncate=truncate)
        what = f"{recipe} T={T} B={B} k={truncate} float64 seed=3/4"
        for name in stack.params:
            np.testing.assert_allclose(grads[name], numeric_gradient(loss, stack.params[name]), rtol=1e-5,
                                       atol=1e-7, err_msg=f"{what}: d{name}")
        np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-5, atol=1e-7, err_msg=f"{what}: dx")
        for i, (part, dpart) in enumerate(zip(leaves(state), leaves(dstate0))):
            np.testing.assert_allclose(dpart, numeric_gradient(loss, part), rtol=1e-5, atol=1e-7,
                                       err_msg=f"{what}: dstate leaf {i}")


def windowed_layer_loss(cell, d, x, S, dy, dS, k, frozen):
    """The loss that defines truncation for one dilated layer: each output (and each final-state
    entry S'[i], an output of step T-d+i) rolled along its chain over at most k transitions,
    from the unperturbed state ``frozen[first]`` = h_{first-d} entering its window, or from S
    when the window reaches the chain's start."""
    T = len(x)
    total = 0.0
    targets = [(t, dy[t], None) for t in range(T)] + [(T - d + i, None, dS[i]) for i in range(d)]
    for t, dout, dstate in targets:
        if t < 0:  # an entry of S carried into S' unchanged
            total += inner(dstate, S[t + d])
            continue
        first = t - min(k, t // d) * d
        start = S[first] if first < d else frozen[first]
        y, state, _ = cell.forward(x[first:t + 1:d], start)
        total += inner(dout, y[-1]) if dstate is None else inner(dstate, state)
    return total


@pytest.mark.parametrize("truncate", [0, 1, 2], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("d", [2, 3], ids=lambda d: f"d={d}")
@pytest.mark.parametrize("kind", ["rnn-tanh", "irnn"])
def test_reference_truncation_matches_windowed_finite_differences(kind, d, truncate):
    T, B = 8, 2
    cell = BY_CELL_NAME[kind].make(3, 3, seed=5, backend="numpy")
    stack = fastrnn.DilatedRNN([cell], [d])
    inputs = make_inputs(stack, T, B, seed=6)
    x, (S,), dy, (dS,) = (inputs[k] for k in ("x", "state", "dy", "dstate"))
    # h_{j-d} entering step j, for every j, from one unperturbed step-by-step run.
    history = list(S)
    for t in range(T):
        _, h, _ = cell.forward(x[t:t + 1], history[t])
        history.append(h)

    def loss():
        return windowed_layer_loss(cell, d, x, S, dy, dS, truncate, history)

    _, _, tape = stack.forward(x, [S])
    grads, dx, (dS0,) = stack.backward(tape, dy, [dS], truncate=truncate)
    what = f"{kind} d={d} T={T} k={truncate} float64 seed=5/6"
    for name, param in cell.params.items():
        np.testing.assert_allclose(grads[f"0.{name}"], numeric_gradient(loss, param), rtol=1e-5, atol=1e-7,
                                   err_msg=f"{what}: d{name}")
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-5, atol=1e-7, err_msg=f"{what}: dx")
    np.testing.assert_allclose(dS0, numeric_gradient(loss, S), rtol=1e-5, atol=1e-7, err_msg=f"{what}: dstate")


def test_truncation_counts_dilated_transitions():
    """With d = 3 and k = 1, output t reaches steps t and t-3 only: weights see no gradient from
    a step more than one dilated transition back, which a per-step count (k=1 → t-1) would give."""
    cell = fastrnn.RNN(1, 1, seed=0, backend="numpy")
    stack = fastrnn.DilatedRNN([cell], [3])
    x = np.ones((7, 1, 1))
    dy = np.zeros((7, 1, 1))
    dy[6] = 1.0  # one output: t = 6, whose chain is 0, 3, 6
    _, _, tape = stack.forward(x)
    _, dx, _ = stack.backward(tape, dy, truncate=1)
    assert np.flatnonzero(dx[:, 0, 0]).tolist() == [3, 6]
    _, dx, _ = stack.backward(tape, dy)
    assert np.flatnonzero(dx[:, 0, 0]).tolist() == [0, 3, 6]


# -- the state contract ---------------------------------------------------------------------

@pytest.mark.parametrize("recipe", UNIDIRECTIONAL, ids=str)
def test_chunked_equals_one_call(recipe, backend):
    """Chunks of 3, 1 and 7 steps against dilations 1, 2, 3, 4 and 7: chunks shorter than d,
    and lengths that are not multiples of d."""
    dtype = "float64"
    stack = recipe.make(3, 4, dtype=dtype, seed=1, backend=backend)
    inputs = make_inputs(stack, 11, 2, seed=2)
    y, final, _ = stack.forward(inputs["x"], inputs["state"])
    state, pieces = inputs["state"], []
    for lo, hi in [(0, 3), (3, 4), (4, 11)]:
        piece, state, _ = stack.forward(inputs["x"][lo:hi], state)
        pieces.append(piece)
    assert_close(np.concatenate(pieces), y, dtype, f"{recipe} {backend} chunked outputs")
    for i, (a, b) in enumerate(zip(leaves(state), leaves(final))):
        assert_close(a, b, dtype, f"{recipe} {backend} chunked final state leaf {i}")


def test_state_layout_is_the_last_d_states_oldest_first():
    cell = fastrnn.GRU(2, 3, seed=0)
    stack = fastrnn.DilatedRNN([cell], [4])
    x = np.random.default_rng(0).standard_normal((6, 2, 2))
    S = np.random.default_rng(1).standard_normal((4, 2, 3))
    y, (S_new,), _ = stack.forward(x, [S])
    np.testing.assert_array_equal(S_new, y[2:6])  # h_{T-d+i} = y[T-d+i]
    # Steps 0..3 read S[0..3]; step 5 reads h_1 = y[1].
    y0, _, _ = cell.forward(x[0:1], S[0])
    np.testing.assert_allclose(y[0], y0[0], rtol=1e-14)
    y5, _, _ = cell.forward(x[5:6], y[1])
    np.testing.assert_allclose(y[5], y5[0], rtol=1e-14)
    # T < d: the new state still holds the entries of the old one that no step replaced.
    y, (S_short,), _ = stack.forward(x[:1], [S])
    np.testing.assert_array_equal(S_short[:3], S[1:])
    np.testing.assert_array_equal(S_short[3], y[0])


def test_gradients_pass_through_entries_no_step_reads():
    """T < d: dstate at S'[i] for T-d+i < 0 is the gradient at S[T+i], unchanged."""
    for backend in ("numba", "numpy"):
        stack = fastrnn.DilatedRNN([fastrnn.LSTM(2, 3, seed=0, backend=backend)], [5])
        S = tuple(np.zeros((5, 1, 3)) for _ in range(2))
        _, _, tape = stack.forward(np.ones((2, 1, 2)), [S])
        dS = tuple(np.random.default_rng(i).standard_normal((5, 1, 3)) for i in range(2))
        _, _, (dS0,) = stack.backward(tape, np.zeros((2, 1, 3)), [dS])
        for part, dpart in zip(dS0, dS):
            np.testing.assert_array_equal(part[2:5], dpart[0:3])


def test_no_call_mutates_its_inputs(backend):
    stack = RECIPES[3].make(3, 4, seed=1, backend=backend)
    inputs = make_inputs(stack, 6, 2, seed=2)
    before = [leaf.copy() for leaf in leaves(list(inputs.values()))]
    params = {k: p.copy() for k, p in stack.params.items()}
    _, _, tape = stack.forward(inputs["x"], inputs["state"])
    for k in (None, 0, 2):
        stack.backward(tape, inputs["dy"], inputs["dstate"], truncate=k)
    for a, b in zip(before, leaves(list(inputs.values()))):
        np.testing.assert_array_equal(a, b)
    for name, p in params.items():
        np.testing.assert_array_equal(p, stack.params[name])


def test_dtypes_and_repeatable_backward():
    stack = RECIPES[4].make(3, 4, dtype="float32", seed=1)
    y, final, tape = stack.forward(np.arange(30).reshape(5, 2, 3))  # integer input is converted
    first = stack.backward(tape, np.ones_like(y), truncate=1)
    second = stack.backward(tape, np.ones_like(y), truncate=1)
    for array in [y, first[1], *first[0].values(), *leaves(final), *leaves(first[2])]:
        assert array.dtype == np.float32
    for name in first[0]:
        np.testing.assert_array_equal(first[0][name], second[0][name])


def test_params_are_one_live_view():
    cells = [fastrnn.GRU(2, 3, seed=0), fastrnn.Bidirectional(fastrnn.RNN(3, 2, seed=1), fastrnn.LSTM(3, 2, seed=2))]
    stack = fastrnn.DilatedRNN(cells, [1, 2])
    assert list(stack.params)[:4] == ["0.weight_ih", "0.weight_hh", "0.bias_ih", "0.bias_hh"]
    assert "1.forward.weight_hh" in stack.params and "1.backward.bias_ih" in stack.params
    assert len(stack.params) == 12
    assert stack.params["0.weight_hh"] is cells[0].params["weight_hh"]
    x = np.ones((4, 1, 2))
    y1, _, _ = stack.forward(x)
    stack.params["1.backward.weight_hh"] = np.zeros((8, 2))  # assignment reaches the cell
    assert cells[1].backward_cell.params["weight_hh"] is stack.params["1.backward.weight_hh"]
    y2, _, tape = stack.forward(x)
    assert not np.array_equal(y1, y2)
    grads, _, _ = stack.backward(tape, np.ones_like(y2))
    assert grads.keys() == stack.params.keys()
    with pytest.raises(KeyError):
        stack.params["2.weight_ih"]
    with pytest.raises(TypeError, match="cannot be removed"):
        del stack.params["0.weight_ih"]


# -- Bidirectional on its own ---------------------------------------------------------------

def test_bidirectional_is_two_cells_over_the_sequence_and_its_reverse(backend):
    f, b = fastrnn.GRU(3, 4, seed=0, backend=backend), fastrnn.LSTM(3, 2, seed=1, backend=backend)
    layer = fastrnn.Bidirectional(f, b)
    inputs = make_inputs(layer, 6, 2, seed=2)
    x, (sf, sb), dy, (dsf, dsb) = (inputs[k] for k in ("x", "state", "dy", "dstate"))
    y, (ff, fb), tape = layer.forward(x, (sf, sb))
    y_f, ff_ref, tf = f.forward(x, sf)
    y_b, fb_ref, tb = b.forward(x[::-1], sb)
    np.testing.assert_array_equal(y, np.concatenate([y_f, y_b[::-1]], axis=2))
    np.testing.assert_array_equal(ff, ff_ref)
    for part, ref in zip(fb, fb_ref):
        np.testing.assert_array_equal(part, ref)
    grads, dx, (d_f, d_b) = layer.backward(tape, dy, (dsf, dsb), truncate=2)
    g_f, dx_f, d_f_ref = f.backward(tf, dy[:, :, :4], dsf, truncate=2)
    g_b, dx_b, d_b_ref = b.backward(tb, dy[::-1, :, 4:], dsb, truncate=2)
    np.testing.assert_allclose(dx, dx_f + dx_b[::-1], rtol=1e-14)
    for name in g_f:
        np.testing.assert_array_equal(grads[f"forward.{name}"], g_f[name])
        np.testing.assert_array_equal(grads[f"backward.{name}"], g_b[name])
    np.testing.assert_array_equal(d_f, d_f_ref)
    for part, ref in zip(d_b, d_b_ref):
        np.testing.assert_array_equal(part, ref)


def test_bidirectional_matches_finite_differences():
    layer = fastrnn.Bidirectional(fastrnn.UGRNN(2, 3, seed=0, backend="numpy"),
                                  fastrnn.IntersectionRNN(2, 3, seed=1, backend="numpy"))
    inputs = make_inputs(layer, 4, 2, seed=2)
    x, state, dy, dstate = (inputs[k] for k in ("x", "state", "dy", "dstate"))

    def loss():
        y, final, _ = layer.forward(x, state)
        return inner(dy, y) + inner(dstate, final)

    _, _, tape = layer.forward(x, state)
    grads, dx, dstate0 = layer.backward(tape, dy, dstate)
    for name in layer.params:
        np.testing.assert_allclose(grads[name], numeric_gradient(loss, layer.params[name]), rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-5, atol=1e-7)
    for part, dpart in zip(leaves(state), leaves(dstate0)):
        np.testing.assert_allclose(dpart, numeric_gradient(loss, part), rtol=1e-5, atol=1e-7)


# -- validation -------------------------------------------------------------------------------

def test_constructor_errors():
    gru = fastrnn.GRU(2, 3)
    with pytest.raises(TypeError, match="cells: expected a non-empty list of cells, got GRU"):
        fastrnn.DilatedRNN(gru, [1])
    with pytest.raises(TypeError, match="cells: expected a non-empty list"):
        fastrnn.DilatedRNN([], [])
    with pytest.raises(ValueError, match="dilations: expected a list of 1 positive ints .* got 2 dilations"):
        fastrnn.DilatedRNN([gru], [1, 2])
    with pytest.raises(ValueError, match=r"dilations\[0\]: expected a positive int, got 0"):
        fastrnn.DilatedRNN([gru], [0])
    with pytest.raises(TypeError, match=r"dilations\[0\]: expected a positive int, got float 2.0"):
        fastrnn.DilatedRNN([gru], [2.0])
    with pytest.raises(TypeError, match=r"cells\[1\]: expected a fastrnn cell or Bidirectional, got str"):
        fastrnn.DilatedRNN([gru, "lstm"], [1, 1])
    with pytest.raises(ValueError, match=r"cells\[1\]: expected input_size 3 \(the output_size of cells\[0\]\), got 4"):
        fastrnn.DilatedRNN([gru, fastrnn.LSTM(4, 3)], [1, 2])
    with pytest.raises(ValueError, match=r"cells\[1\]: expected dtype float64 like cells\[0\], got float32"):
        fastrnn.DilatedRNN([gru, fastrnn.LSTM(3, 3, dtype="float32")], [1, 2])
    with pytest.raises(ValueError, match=r"cells\[1\]: expected backend numba like cells\[0\], got numpy"):
        fastrnn.DilatedRNN([gru, fastrnn.LSTM(3, 3, backend="numpy")], [1, 2])
    square = fastrnn.GRU(3, 3)
    with pytest.raises(ValueError, match=r"cells\[1\]: the same cell object appears twice"):
        fastrnn.DilatedRNN([square, square], [1, 2])
    with pytest.raises(TypeError, match="forward_cell: expected a fastrnn cell .* got DilatedRNN"):
        fastrnn.Bidirectional(fastrnn.DilatedRNN([gru], [1]), gru)
    with pytest.raises(ValueError, match="backward_cell: expected input_size 2 like forward_cell, got 3"):
        fastrnn.Bidirectional(gru, fastrnn.GRU(3, 3))
    with pytest.raises(ValueError, match="backward_cell: expected a second cell"):
        fastrnn.Bidirectional(gru, gru)


@pytest.fixture
def stack():
    return fastrnn.DilatedRNN([fastrnn.GRU(2, 3, seed=0), fastrnn.LSTM(3, 4, seed=1)], [1, 2])


def test_state_errors(stack):
    x = np.zeros((5, 2, 2))
    with pytest.raises(ValueError, match=r"x: expected shape \(\*, \*, 2\) \(T, B, input_size\), got \(5, 2, 3\)"):
        stack.forward(np.zeros((5, 2, 3)))
    with pytest.raises(TypeError, match="state: expected a list of 2 layer states, got 1 entries"):
        stack.forward(x, [np.zeros((1, 2, 3))])
    with pytest.raises(TypeError, match="state: expected a list of 2 layer states, got ndarray"):
        stack.forward(x, np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"state\[0\]: expected a 3-d array of shape \(1, 2, 3\) "
                                         r"\(dilation 1, batch, hidden_size\), got a 2-d array of shape \(2, 3\)"):
        stack.forward(x, [np.zeros((2, 3)), None])
    with pytest.raises(TypeError, match=r"state\[1\]: expected a tuple of 2 states .* got ndarray"):
        stack.forward(x, [None, np.zeros((2, 2, 4))])
    with pytest.raises(ValueError, match=r"state\[1\]\[1\]: expected shape \(2, 2, 4\) .* got \(1, 2, 4\)"):
        stack.forward(x, [None, (np.zeros((2, 2, 4)), np.zeros((1, 2, 4)))])
    bad = np.zeros((2, 2, 4))
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"state\[1\]\[0\]: contains NaN"):
        stack.forward(x, [None, (bad, np.zeros((2, 2, 4)))])


def test_backward_errors(stack):
    y, _, tape = stack.forward(np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(5, 2, 4\) .* got \(5, 2, 3\)"):
        stack.backward(tape, np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"dstate\[1\]\[0\]: expected shape \(2, 2, 4\)"):
        stack.backward(tape, np.zeros_like(y), [None, (np.zeros((1, 2, 4)), np.zeros((2, 2, 4)))])
    with pytest.raises(TypeError, match="truncate: expected None or an int >= 0, got float 1.0"):
        stack.backward(tape, np.zeros_like(y), truncate=1.0)
    other = fastrnn.DilatedRNN([fastrnn.GRU(2, 3), fastrnn.LSTM(3, 4)], [1, 2])
    with pytest.raises(ValueError, match="tape: it was made by another layer"):
        other.backward(tape, np.zeros_like(y))
    cell_tape = stack.cells[0].forward(np.zeros((5, 2, 2)))[2]
    with pytest.raises(TypeError, match="tape: expected the tape returned by forward, got Tape"):
        stack.backward(cell_tape, np.zeros_like(y))
