"""Decoupled training with synthetic gradients (issue 6): the fit option against a reference of
one decoupled segment, written from the rules; zero M equals plain TBPTT; resume; arguments."""

import numpy as np
import pytest

import fastrnn
from fastrnn.reference.synthetic_gradients import decoupled_segment, flatten, unflatten
from fastrnn.synthetic_gradients import SyntheticGradients, flatten_state, state_size, unflatten_state

from .helpers import Recorder, assert_close

CORES = {
    "rnn": lambda backend: fastrnn.RNN(2, 3, seed=0, backend=backend),
    "gru": lambda backend: fastrnn.GRU(2, 3, seed=0, backend=backend),
    "lstm": lambda backend: fastrnn.LSTM(2, 3, seed=0, backend=backend),
    "dilated": lambda backend: fastrnn.DilatedRNN([fastrnn.GRU(2, 3, seed=0, backend=backend),
                                                   fastrnn.LSTM(3, 2, seed=1, backend=backend)], [1, 2]),
}


def _data(readout, N=4, T=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, 2))
    return X, rng.integers(0, 3, size=(N,) if readout == "last" else (N, T))


@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("kind", list(CORES))
def test_fit_equals_the_reference_decoupled_segments(kind, readout):
    """Every segment's gradients (core and head), and M after each of its updates, as the
    reference computes them segment by segment; M starts from non-zero values."""
    T, K, B = 7, 3, 4  # segments [0, 3), [3, 6), [6, 7): T is not a multiple of K
    model = fastrnn.Model(CORES[kind]("numba"), 3, readout=readout, seed=0)
    reference_core = CORES[kind]("numpy")
    X, Y = _data(readout, N=B, T=T)
    rng = np.random.default_rng(5)
    sg = SyntheticGradients(scale=0.7, lr=0.01)
    sg.prepare(state_size(model.core), model.dtype)
    sg.A[...] = 0.3 * rng.standard_normal(sg.A.shape)
    sg.c[...] = 0.3 * rng.standard_normal(sg.c.shape)
    A, c = sg.A.copy(), sg.c.copy()
    recorder = Recorder()  # the core and head stay as they are, so each segment can be replayed
    model.fit(X, Y, epochs=1, batch_size=B, optimizer=recorder, tbptt=K, synthetic_gradients=sg, progress=False)

    m_optimizer = fastrnn.Adam(0.01)
    x = np.swapaxes(X, 0, 1)
    y = Y if readout == "last" else np.swapaxes(Y, 0, 1)
    weight, bias = model.params["head.weight"], model.params["head.bias"]
    state = None
    segments = [(s, min(s + K, T)) for s in range(0, T, K)]
    assert len(recorder.grads) == len(segments)
    for (start, end), recorded in zip(segments, recorder.grads):
        target = y if readout == "last" else y[start:end]
        if readout == "last" and end < T:
            target = None
        grads, head, final, _, sg_loss, dM = decoupled_segment(
            reference_core, weight, bias, x[start:end], target, state, A, c, 0.7, inject=end < T,
            last_only=readout == "last")
        what = f"{kind} readout={readout} segment {start}-{end}"
        for name, g in grads.items():
            assert_close(recorded[f"core.{name}"], g, "float64", f"{what}: core.{name}")
        for name, g in head.items():
            assert_close(recorded[f"head.{name}"], g, "float64", f"{what}: head.{name}")
        if dM is not None:
            m_optimizer.step({"A": A, "c": c}, {"A": dM[0], "c": dM[1]})
        state = final
    assert_close(sg.A, A, "float64", f"{kind} {readout}: A after the epoch")
    assert_close(sg.c, c, "float64", f"{kind} {readout}: c after the epoch")


def test_zero_frozen_module_equals_plain_tbptt():
    X, Y = _data("last", N=16, T=9)

    def run(synthetic):
        model = fastrnn.Model(fastrnn.GRU(2, 4, seed=1), 3, readout="last", seed=1)
        history = model.fit(X, Y, epochs=3, batch_size=4, optimizer=fastrnn.Adam(0.01), tbptt=3,
                            synthetic_gradients=synthetic, progress=False)
        return model, history

    plain, plain_history = run(None)
    frozen, frozen_history = run(SyntheticGradients(lr=0.0))
    assert frozen_history["loss"] == plain_history["loss"]
    assert frozen_history["accuracy"] == plain_history["accuracy"]
    for name in plain.params:
        np.testing.assert_array_equal(frozen.params[name], plain.params[name])
    # ...and a learning module does change the training (readout="last": plain TBPTT(3) leaves
    # the first two segments without any gradient).
    learning, learning_history = run(SyntheticGradients(lr=0.05))
    assert learning_history["loss"] != plain_history["loss"]


def test_backends_agree_and_runs_are_deterministic():
    X, Y = _data("all", N=8, T=8)
    histories = []
    for backend in ("numba", "numba", "numpy"):
        model = fastrnn.Model(CORES["lstm"](backend), 3, seed=2)
        histories.append(model.fit(X, Y, epochs=2, batch_size=4, tbptt=2, synthetic_gradients=True,
                                   optimizer=fastrnn.Adam(0.01), progress=False))
    assert histories[0] == histories[1]
    for key in histories[0]:
        np.testing.assert_allclose(histories[2][key], histories[0][key], rtol=1e-9, err_msg=key)


def test_resume_with_synthetic_gradients_is_exact(tmp_path):
    X, Y = _data("last", N=8, T=8)

    def run(epochs, **options):
        model = fastrnn.Model(fastrnn.RNN(2, 3, seed=0), 3, readout="last", seed=0)
        sg = SyntheticGradients(scale=0.5, lr=0.01)
        history = model.fit(X, Y, epochs=epochs, batch_size=4, tbptt=2, synthetic_gradients=sg,
                            optimizer=fastrnn.Adam(0.01), progress=False, **options)
        return model, sg, history

    whole, whole_sg, history = run(4)
    run(2, checkpoint=tmp_path / "c.npz")
    resumed, resumed_sg, resumed_history = run(4, checkpoint=tmp_path / "c.npz", resume=True)
    assert resumed_history == history
    np.testing.assert_array_equal(resumed_sg.A, whole_sg.A)
    for name in whole.params:
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    with pytest.raises(ValueError, match="was written with synthetic gradients"):
        fastrnn.Model(fastrnn.RNN(2, 3, seed=0), 3, readout="last", seed=0).fit(
            X, Y, epochs=4, batch_size=4, tbptt=2, checkpoint=tmp_path / "c.npz", resume=True, progress=False,
            optimizer=fastrnn.Adam(0.01))


def test_flattening_matches_the_reference_and_round_trips():
    rng = np.random.default_rng(0)
    state = [rng.standard_normal((1, 3, 2)), (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))),
             ((rng.standard_normal((3, 3, 2)),), rng.standard_normal((3, 3, 1)))]
    flat = flatten_state(state)
    np.testing.assert_array_equal(flat, flatten(state))
    assert flat.shape == (3, 2 + 16 + 6 + 3)
    for a, b in zip(*(np.concatenate([x.ravel() for x in _leaves(s)]) for s in (unflatten_state(flat, state), state))):
        assert a == b
    again = unflatten(flat, state)
    np.testing.assert_array_equal(flatten(again), flat)


def _leaves(state):
    return [state] if isinstance(state, np.ndarray) else [leaf for part in state for leaf in _leaves(part)]


def test_arguments_are_checked():
    X, Y = _data("last")
    model = fastrnn.Model(fastrnn.RNN(2, 3), 3, readout="last")
    with pytest.raises(ValueError, match="synthetic_gradients: needs segments of K steps, tbptt=K; got tbptt=None"):
        model.fit(X, Y, epochs=1, synthetic_gradients=True)
    with pytest.raises(ValueError, match=r"got tbptt=\(2, 3\)"):
        model.fit(X, Y, epochs=1, tbptt=(2, 3), synthetic_gradients=True)
    with pytest.raises(TypeError, match="synthetic_gradients: expected None, True or a SyntheticGradients, got str"):
        model.fit(X, Y, epochs=1, tbptt=2, synthetic_gradients="yes")
    with pytest.raises(ValueError, match="scale: expected a finite number, got nan"):
        SyntheticGradients(scale=float("nan"))
