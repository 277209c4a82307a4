"""fit's compiled loop (fastrnn.flat, fastrnn.kernels.training) against the Python loop of the numpy
backend, and the flat buffers behind ``model.params``."""

import numpy as np
import pytest

import fastrnn
from fastrnn.flat import CompiledLoop, batch_order, compiled_loop_applies
from fastrnn.registry import CASES

from .helpers import RTOL

N, T, I, H, O = 10, 7, 3, 4, 3


def _data(loss, readout, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, I))
    shape = (N,) if readout == "last" else (N, T)
    if loss == "softmax_cross_entropy":
        return X, rng.integers(0, O, shape)
    values = rng.uniform(0, 1, (*shape, O))
    return X, values if loss == "sigmoid_cross_entropy" else 2 * values - 1


def _fit(case, backend, dtype, loss="softmax_cross_entropy", readout="all", optimizer=("adam", 0.02), **options):
    model = fastrnn.Model(case.make(I, H, dtype=dtype, seed=1, backend=backend), O, loss=loss, readout=readout,
                          seed=2)
    kind, lr = optimizer
    history = model.fit(*_data(loss, readout), epochs=2, batch_size=4, progress=False,
                        optimizer=fastrnn.optim.OPTIMIZERS[kind](lr), **options)
    return model, history


def _assert_same_training(fast, slow, dtype):
    (fast_model, fast_history), (slow_model, slow_history) = fast, slow
    assert fast_history.keys() == slow_history.keys()
    # Loops against BLAS: summation order only, ~1 ulp per operation, grown over 6 updates; the
    # accuracies are counts, and equal unless a logit sits within rounding of a decision.
    rtol = 100 * RTOL[np.dtype(dtype)]
    for key in fast_history:
        np.testing.assert_allclose(fast_history[key], slow_history[key], rtol=rtol, err_msg=key)
    for name in slow_model.params:
        scale = max(1.0, float(np.abs(slow_model.params[name]).max()))
        np.testing.assert_allclose(fast_model.params[name], slow_model.params[name], rtol=rtol, atol=rtol * scale,
                                   err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_cell_trains_as_the_python_loop_does(case, dtype):
    options = {"tbptt": (2, 3), "truncate": 1, "clip": 0.5}
    fast, slow = _fit(case, "numba", dtype, **options), _fit(case, "numpy", dtype, **options)
    assert fast[0]._flat is not None and slow[0]._flat is None
    _assert_same_training(fast, slow, dtype)


@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("rnn-tanh", "lstm", "intersection")], ids=str)
def test_synthetic_gradients_train_as_the_python_loop_does(case, readout):
    """The module's injection, its training at each boundary and its own Adam, compiled; an LSTM's
    state is (h, c) side by side."""
    runs = []
    for backend in ("numba", "numpy"):
        sg = fastrnn.SyntheticGradients(scale=0.5, lr=0.05)
        runs.append((*_fit(case, backend, "float64", readout=readout, tbptt=2, synthetic_gradients=sg), sg))
    (fast_model, fast_history, fast_sg), (slow_model, slow_history, slow_sg) = runs
    assert fast_history["sg_loss"][-1] > 0 and np.abs(fast_sg.A).max() > 0  # M learned something
    _assert_same_training((fast_model, fast_history), (slow_model, slow_history), "float64")
    for name in ("A", "c"):
        np.testing.assert_allclose(getattr(fast_sg, name), getattr(slow_sg, name), rtol=1e-8, atol=1e-12)
    assert fast_sg.optimizer.steps == slow_sg.optimizer.steps > 0


@pytest.mark.parametrize("optimizer", [("sgd", 0.1), ("adam", 0.02), ("rmsprop", 0.01)])
@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy", "mse"])
def test_every_loss_readout_and_optimizer_trains_as_the_python_loop_does(loss, readout, optimizer):
    case = CASES[1]
    for options in ({}, {"tbptt": 3}):
        fast = _fit(case, "numba", "float64", loss, readout, optimizer, **options)
        slow = _fit(case, "numpy", "float64", loss, readout, optimizer, **options)
        _assert_same_training(fast, slow, "float64")


def test_the_compiled_loop_is_taken_where_it_applies():
    cell = fastrnn.GRU(2, 3, seed=0)
    model = fastrnn.Model(cell, 2, seed=0)
    assert compiled_loop_applies(model, fastrnn.Adam(), None, None)
    assert compiled_loop_applies(model, fastrnn.Adam(), fastrnn.SyntheticGradients(), None)
    sg = fastrnn.SyntheticGradients()
    sg.optimizer = fastrnn.SGD(0.1)
    assert not compiled_loop_applies(model, fastrnn.Adam(), sg, None)

    class Mine(fastrnn.SGD):
        pass

    assert not compiled_loop_applies(model, Mine(), None, None)  # an optimizer of one's own: the Python loop
    stack = fastrnn.Model(fastrnn.DilatedRNN([fastrnn.GRU(2, 3), fastrnn.GRU(3, 3)], [1, 2]), 2)
    assert stack._flat is None
    assert fastrnn.Model(fastrnn.GRU(2, 3, backend="numpy"), 2)._flat is None


def test_params_are_views_of_one_buffer_and_a_replaced_array_is_taken_in():
    model = fastrnn.Model(fastrnn.IntersectionRNN(3, 4, seed=0), 2, seed=0)
    buffer = model._flat.buffer
    assert buffer.size == sum(p.size for p in model.params.values())
    for name, p in model.params.items():
        assert np.shares_memory(p, buffer), name
    held = model.params["core.weight_hh"]
    X, Y = np.random.default_rng(0).standard_normal((6, 5, 3)), np.zeros((6, 5), int)
    before = held.copy()
    model.fit(X, Y, epochs=1, batch_size=3, progress=False)
    assert not np.array_equal(held, before)  # the array a user holds is the one that trains

    replacement = np.full((16, 4), 0.01)
    model.params["core.weight_hh"] = replacement
    optimizer = fastrnn.Adam(0.01)
    model.fit(X, Y, epochs=1, batch_size=3, optimizer=optimizer, progress=False)
    assert model.params["core.weight_hh"] is not replacement
    assert np.shares_memory(model.params["core.weight_hh"], buffer)
    np.testing.assert_array_equal(replacement, 0.01)  # taken in by copy, then trained in the buffer
    assert not np.allclose(model.params["core.weight_hh"], 0.01)
    for slots in optimizer.state.values():  # the optimizer's state: views of the loop's buffer
        assert all(s.base is not None for s in slots.values())

    model.params["core.weight_hh"] = np.zeros((4, 4))
    with pytest.raises(ValueError, match=r"weight_hh.*\(16, 4\)"):
        model.fit(X, Y, epochs=1, progress=False)


def test_batches_are_drawn_as_the_python_loop_draws_them():
    rng = np.random.default_rng(0)
    for n, size in ((10, 3), (10, 10), (10, 1), (7, 16)):
        order = rng.permutation(n)
        expected = np.concatenate([np.sort(order[lo:lo + size]) for lo in range(0, n, size)])
        np.testing.assert_array_equal(batch_order(order, size), expected)


def test_blocks_of_batches_add_up_to_the_epoch(monkeypatch):
    """However the epoch is cut into compiled calls, the result is the same."""
    X, Y = _data("softmax_cross_entropy", "all")
    runs = []
    for block in (1e-9, 10.0):  # a call per batch, and the whole epoch in one call
        monkeypatch.setattr("fastrnn.flat.BLOCK_SECONDS", block)
        model = fastrnn.Model(fastrnn.LSTM(I, H, seed=0), O, seed=0)
        runs.append((model, model.fit(X, Y, epochs=2, batch_size=2, progress=False)))
    (a, ha), (b, hb) = runs
    assert ha == hb
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_a_progress_bar_counts_every_batch(monkeypatch):
    pytest.importorskip("tqdm")
    seen = []
    original = CompiledLoop.epoch

    def spy(self, X, targets, order, batch_size, on_block=None):
        def counting(batches, total, positions):
            seen.append(batches)
            on_block(batches, total, positions)
        return original(self, X, targets, order, batch_size, counting)

    monkeypatch.setattr(CompiledLoop, "epoch", spy)
    model = fastrnn.Model(fastrnn.RNN(I, H, seed=0), O, seed=0)
    model.fit(*_data("softmax_cross_entropy", "all"), epochs=3, batch_size=3, progress=True)
    assert sum(seen) == 3 * 4


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_compiled_sigmoid_cross_entropy_is_the_loss_modules(dtype):
    # More positions than one factor of the kernel's product of (1 + e^{-|z|}) takes, logits far
    # into both tails (where e^{-|z|} underflows) and soft targets: the loss, its gradient and the
    # counts of fastrnn.losses, which the Python loop uses.
    from fastrnn.kernels import training as compiled
    from fastrnn.losses import SigmoidCrossEntropy

    rng = np.random.default_rng(3)
    steps, batch, hidden, outputs = 9, 70, 5, 2
    rows = steps * batch
    assert rows * outputs > 2 * compiled.PRODUCT_TERMS
    y = rng.standard_normal((rows, hidden)).astype(dtype)
    weight = (4 * rng.standard_normal((outputs, hidden))).astype(dtype)
    bias = np.zeros(outputs, dtype)
    values = rng.uniform(0, 1, (steps, batch, outputs)).astype(dtype)
    values[0, :10] = np.round(values[0, :10])
    # The first ten rows' logits are exactly these.
    y[:10, 1:] = 0
    y[:10, 0] = [-800, -60, -30, -5, 0, 1e-9, 5, 30, 60, 800]
    weight[:, 0] = 1
    z = np.empty((rows, outputs), dtype)
    dz = np.empty_like(z)
    counts = np.zeros(2, np.int64)
    total = compiled.head_loss(y, np.empty((steps, 0), np.intp), values, 0, weight, bias,
                               compiled.SIGMOID_CROSS_ENTROPY, 7.0, z, dz, counts)
    logits = y.astype(np.float64) @ weight.T.astype(np.float64)
    np.testing.assert_allclose(z, logits, rtol=RTOL[np.dtype(dtype)], atol=RTOL[np.dtype(dtype)])
    loss = SigmoidCrossEntropy()
    target = values.reshape(rows, outputs)
    value, grad = loss.value_and_grad(z, target, 7.0)
    rtol = 10 * RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(total / 7.0, value, rtol=rtol)
    np.testing.assert_allclose(dz, grad, rtol=rtol, atol=rtol * np.abs(grad).max())
    assert tuple(counts) == loss.correct(z, target)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_training_step_makes_the_updates_of_fit(backend):
    """Model.training_step (what `fastrnn bench --training` times) runs fit's update on one batch:
    three steps on the whole data equal three epochs of one batch each (fit sorts a batch's
    indices, so that batch is the data in order), parameters and optimizer steps alike; its
    metrics are that epoch's sums."""
    case = next(c for c in CASES if c.name == "gru")
    X, Y = _data("softmax_cross_entropy", "all")
    options = {"tbptt": (3, 4), "truncate": 2}

    def model():
        return fastrnn.Model(case.make(I, H, seed=1, backend=backend), O, loss="softmax_cross_entropy", seed=2)

    fitted, stepped = model(), model()
    fit_optimizer, step_optimizer = fastrnn.optim.Adam(0.02), fastrnn.optim.Adam(0.02)
    history = fitted.fit(X, Y, epochs=3, batch_size=N, progress=False, optimizer=fit_optimizer, **options)
    step = stepped.training_step(X, Y, optimizer=step_optimizer, **options)
    for epoch in range(3):
        metrics = step()
        assert metrics.loss / metrics.positions == history["loss"][epoch]
        assert metrics.correct / metrics.judged == history["accuracy"][epoch]
    assert step_optimizer.steps == fit_optimizer.steps == 3 * 3  # T = 7 in windows of 3: three updates a batch
    for name in fitted.params:
        np.testing.assert_array_equal(stepped.params[name], fitted.params[name], err_msg=name)
