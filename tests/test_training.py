"""Training (issue 5): losses, optimizers, Model gradients, TBPTT(k1, k2), determinism, checkpoints,
divergence, files, the built-in tasks and ``fastrnn train``."""

import copy
import os

import numpy as np
import pytest

import fastrnn
from fastrnn import datasets, io
from fastrnn.cli import main
from fastrnn.flat import CompiledLoop
from fastrnn.losses import LOSSES
from fastrnn.optim import clip_grad_norm
from fastrnn.tasks import PERMUTATION_SEED, TASKS
from fastrnn.training import PythonLoop

from .helpers import Recorder, numeric_gradient, write_mnist


def small_model(backend="numpy", loss="softmax_cross_entropy", readout="all", seed=0, kind="rnn"):
    cores = {
        "rnn": lambda: fastrnn.RNN(2, 3, seed=seed, backend=backend),
        "stack": lambda: fastrnn.DilatedRNN([fastrnn.GRU(2, 3, seed=seed, backend=backend),
                                             fastrnn.LSTM(3, 3, seed=seed + 1, backend=backend)], [1, 2]),
    }
    return fastrnn.Model(cores[kind](), 3, loss=loss, readout=readout, seed=seed)


def small_data(loss, readout, N=4, T=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, 2))
    shape = (N,) if readout == "last" else (N, T)
    if loss == "softmax_cross_entropy":
        return X, rng.integers(0, 3, size=shape)
    Y = rng.uniform(0, 1, size=(*shape, 3))
    return X, (Y if loss == "sigmoid_cross_entropy" else 3 * Y - 1)


# -- losses and optimizers ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_matches_finite_differences(name):
    loss = LOSSES[name]()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 3, 5))
    target = rng.integers(0, 5, (4, 3)) if loss.integer_targets else rng.uniform(0, 1, (4, 3, 5))
    value, grad = loss.value_and_grad(z, target, 12)
    np.testing.assert_allclose(grad, numeric_gradient(lambda: loss.value_and_grad(z, target, 12)[0], z),
                               rtol=1e-6, atol=1e-9)
    assert np.isfinite(value)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_stable_for_large_logits(name):
    loss = LOSSES[name]()
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]])
    target = np.array([1, 0]) if loss.integer_targets else np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 1.0]])
    value, grad = loss.value_and_grad(z, target, 2)
    assert np.isfinite(value) and np.isfinite(grad).all() and np.isfinite(loss.link(z)).all()
    if name == "softmax_cross_entropy":  # the wrong class at 2e4 below: loss ~ 1e4 per wrong sample
        assert value == pytest.approx((2e4 + 2e4) / 2, rel=1e-6)


def test_optimizers_follow_their_update_rules():
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    p = {"w": np.zeros(2)}
    sgd = fastrnn.SGD(lr=0.1, momentum=0.9)
    sgd.step(p, {"w": g1})
    sgd.step(p, {"w": g2})
    np.testing.assert_allclose(p["w"], -0.1 * g1 - 0.1 * (0.9 * g1 + g2))
    p = {"w": np.zeros(2)}
    adam = fastrnn.Adam(lr=0.01)
    adam.step(p, {"w": g1})
    np.testing.assert_allclose(p["w"], -0.01 * g1 / (np.abs(g1) + 1e-8))  # first Adam step is lr * sign
    p = {"w": np.zeros(2)}
    rms = fastrnn.RMSProp(lr=0.01, rho=0.9)
    rms.step(p, {"w": g1})
    np.testing.assert_allclose(p["w"], -0.01 * g1 / (np.sqrt(0.1 * g1 * g1) + 1e-8))
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([grads["a"][0], grads["b"][0]], [0.6, 0.8])
    with pytest.raises(ValueError, match="lr: expected a finite number >= 0, got -1"):
        fastrnn.SGD(lr=-1)


# -- gradients of the model -------------------------------------------------------------------

@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_model_gradient_matches_finite_differences(loss, readout):
    model = small_model(loss=loss, readout=readout, kind="stack")
    X, Y = small_data(loss, readout)
    recorder = Recorder()
    model.fit(X, Y, epochs=1, batch_size=len(X), optimizer=recorder, progress=False)
    (grads,) = recorder.grads

    def objective():
        return model.evaluate(X, Y)["loss"]

    for name in model.params:
        np.testing.assert_allclose(grads[name], numeric_gradient(objective, model.params[name]), rtol=1e-5,
                                   atol=1e-8, err_msg=f"{loss} {readout} {name}")


@pytest.mark.parametrize("truncate", [None, 1])
@pytest.mark.parametrize("tbptt", [(2, 2), (2, 3), (3, 5)], ids=lambda t: f"k1={t[0]},k2={t[1]}")
def test_tbptt_gradients_are_the_windowed_definition(tbptt, truncate):
    """Chunk c's gradient is that of the mean loss of its k1 outputs, each rolled forward over the
    window of the last k2 steps from the (constant) state that entered the window."""
    k1, k2 = tbptt
    model = small_model(kind="rnn")
    X, Y = small_data("softmax_cross_entropy", "all", T=7)
    recorder = Recorder()
    model.fit(X, Y, epochs=1, batch_size=len(X), optimizer=recorder, tbptt=tbptt, truncate=truncate,
              progress=False)
    x = np.swapaxes(X, 0, 1)
    y = np.swapaxes(Y, 0, 1)
    # The window of a chunk adds the k2 - k1 steps before it (fewer at the start).
    chunks = [(max(0, s - (k2 - k1)), s, min(s + k1, 7)) for s in range(0, 7, k1)]
    assert len(recorder.grads) == len(chunks)
    cell = model.core
    for grads, (window, start, end) in zip(recorder.grads, chunks):
        frozen = cell.forward(x[:window])[1] if window else None

        def chunk_loss():
            if truncate is None:
                out, _, _ = cell.forward(x[window:end], frozen)
                z = model._head_forward(out[start - window:])
                return model.loss.value_and_grad(z, y[start:end], z.shape[0] * z.shape[1])[0]
            # Within the window, each output t is rolled over its own truncate-window as well.
            total = 0.0
            for t in range(start, end):
                first = max(window, t - truncate)
                entering = frozen if first == window else cell.forward(x[window:first], frozen)[1]
                out, _, _ = cell.forward(x[first:t + 1], entering)
                total += model.loss.value_and_grad(model._head_forward(out[-1:]), y[t:t + 1], 1)[0]
            return total / ((end - start) * x.shape[1])

        for name in model.params:
            if truncate is None or not name.startswith("core"):
                expected = numeric_gradient(chunk_loss, model.params[name])
            else:
                # The frozen entering states must stay unperturbed: roll them from the saved values.
                expected = _truncated_numeric(model, x, y, window, start, end, truncate, frozen, name)
            np.testing.assert_allclose(grads[name], expected, rtol=1e-5, atol=1e-8,
                                       err_msg=f"tbptt={tbptt} truncate={truncate} chunk {start}-{end} {name}")


def _truncated_numeric(model, x, y, window, start, end, truncate, frozen, name):
    cell = model.core
    # States entering each step of the window, computed once with the unperturbed parameters.
    entering = {window: frozen}
    for s in range(window, end):
        entering[s + 1] = cell.forward(x[s:s + 1], entering[s])[1]

    def loss():
        total = 0.0
        for t in range(start, end):
            first = max(window, t - truncate)
            out, _, _ = cell.forward(x[first:t + 1], entering[first])
            total += model.loss.value_and_grad(model._head_forward(out[-1:]), y[t:t + 1], 1)[0]
        return total / ((end - start) * x.shape[1])

    return numeric_gradient(loss, model.params[name])


# -- determinism, backends, checkpoints ---------------------------------------------------------

def _train(backend, epochs=3, seed=0, **options):
    task = TASKS["binary-addition"]
    (X, Y), test = task.data("small", seed=0)
    model = task.model(backend=backend, seed=seed)
    history = model.fit(X[:200], Y[:200], epochs=epochs, batch_size=16, optimizer=fastrnn.Adam(0.01),
                        validation=(test[0][:50], test[1][:50]), progress=False, **options)
    return model, history


def test_same_seed_same_history_and_parameters():
    (a, ha), (b, hb) = _train("numba"), _train("numba")
    assert ha == hb
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    _, hc = _train("numba", seed=1)
    assert hc != ha


def test_numpy_backend_trains_to_the_same_history():
    (_, fast), (_, slow) = _train("numba"), _train("numpy")
    assert fast.keys() == slow.keys()
    for key in fast:
        # float64 kernels and the reference differ in summation order only: ~1e-15 per step,
        # grown over 39 updates of a sigmoid RNN.
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    path = tmp_path / "run.npz"
    whole, history = _train("numba", epochs=4)
    first, _ = _train("numba", epochs=2, checkpoint=path)
    resumed, resumed_history = _train("numba", epochs=4, seed=7, checkpoint=path, resume=True)  # init overwritten
    assert resumed_history == history
    for name in whole.params:
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])


def test_a_float32_dilated_run_checkpoints_and_resumes(tmp_path):
    """A float32 stack trains through the Python loop, whose metrics are float32 scalars."""
    path = tmp_path / "run.npz"
    X = np.random.default_rng(0).standard_normal((24, 6, 1)).astype(np.float32)
    Y = (X.sum(axis=(1, 2)) > 0).astype(np.int64)

    def run(epochs, **options):
        cells = [fastrnn.GRU(1, 4, seed=0, dtype="float32"), fastrnn.GRU(4, 4, seed=1, dtype="float32")]
        model = fastrnn.Model(fastrnn.DilatedRNN(cells, [1, 2]), 2, readout="last", seed=0)
        return model.fit(X, Y, epochs=epochs, batch_size=8, optimizer="rmsprop", validation=(X, Y),
                         progress=False, **options)

    whole = run(3)
    run(2, checkpoint=path)
    resumed = run(3, checkpoint=path, resume=True)
    assert resumed == whole
    assert all(type(value) is float for values in resumed.values() for value in values)


def test_save_and_load_round_trip(tmp_path):
    core = fastrnn.DilatedRNN([fastrnn.Bidirectional(fastrnn.LSTM(2, 3, seed=0), fastrnn.RNN(2, 2, "relu", seed=1)),
                               fastrnn.IntersectionRNN(5, 4, seed=2)], [1, 3])
    model = fastrnn.Model(core, 3, seed=4)
    X = np.random.default_rng(0).standard_normal((3, 5, 2))
    model.save(tmp_path / "m.npz")
    loaded = fastrnn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.core.describe() == core.describe()
    reference = fastrnn.load(tmp_path / "m.npz", backend="numpy")
    np.testing.assert_allclose(reference.predict(X), model.predict(X), rtol=1e-12)


def test_a_crash_while_saving_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = small_model()
    model.save(path)
    before = path.read_bytes()
    saved_bias = model.params["head.bias"].copy()

    def crash(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt("simulated crash mid-write")

    monkeypatch.setattr(io.np, "savez", crash)
    model.params["head.bias"][...] += 1.0
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind
    monkeypatch.undo()
    np.testing.assert_array_equal(fastrnn.load(path).params["head.bias"], saved_bias)


def test_bad_files_are_rejected_clearly(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="not a fastrnn model file"):
        fastrnn.load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastrnn model file .no 'meta' entry"):
        fastrnn.load(foreign)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array('{"format": "someone-else/3"}'))
    with pytest.raises(ValueError, match="expected a fastrnn.model/1 file, got format 'someone-else/3'"):
        fastrnn.load(other)
    model = small_model()
    model.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        arrays = dict(data)
    arrays["param/head.weight"] = np.zeros((2, 2))
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match=r"param/head.weight has shape \(2, 2\)"):
        fastrnn.load(tmp_path / "broken.npz")
    with pytest.raises(FileNotFoundError):
        fastrnn.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="is a saved model, not a fit checkpoint"):
        small_model().fit(*small_data("softmax_cross_entropy", "all"), epochs=1, checkpoint=tmp_path / "good.npz",
                          resume=True, progress=False)


# -- divergence -------------------------------------------------------------------------------

def test_divergence_stops_and_keeps_the_last_finite_parameters():
    model = small_model(loss="mse", backend="numba")
    X, Y = small_data("mse", "all")
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(fastrnn.DivergenceError, match=r"the update would make the parameters non-finite at step 1 "
                                                      r"\(epoch 1, batch 1\)"):
        model.fit(X, 1e6 * Y, epochs=3, batch_size=4, optimizer=fastrnn.SGD(lr=1e305), progress=False)
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)


def test_divergence_of_the_loss_is_reported_with_its_step():
    model = small_model(loss="mse", backend="numba")
    X, Y = small_data("mse", "all")
    # A finite but absurd step: the parameters stay finite, the next loss overflows.
    with pytest.raises(fastrnn.DivergenceError, match=r"(loss became (inf|nan)|non-finite) at step \d+ "
                                                      r"\(epoch \d+, batch 1\); training stopped") as error:
        model.fit(X, Y, epochs=5, batch_size=4, optimizer=fastrnn.SGD(lr=1e150), progress=False)
    assert "at step 1 " not in str(error.value)  # the first updates were finite; a later one was not
    assert all(np.isfinite(p).all() for p in model.params.values())


# -- validation of arguments ----------------------------------------------------------------------

def test_fit_and_model_arguments_are_checked():
    model = small_model()
    X, Y = small_data("softmax_cross_entropy", "all")
    with pytest.raises(TypeError,
                       match="Y: expected integer class labels for softmax_cross_entropy, got dtype float64"):
        model.fit(X, Y.astype(float), epochs=1)
    with pytest.raises(ValueError, match=r"Y: expected class labels in 0..2, got values in 0..5"):
        model.fit(X, np.full_like(Y, 5) * (np.arange(Y.size).reshape(Y.shape) % 2), epochs=1)
    with pytest.raises(ValueError, match=r"Y: expected shape \(4, 7\) \(N, T\), got \(4,\)"):
        model.fit(X, Y[:, 0], epochs=1)
    with pytest.raises(ValueError, match=r"X: expected shape \(\*, \*, 2\)"):
        model.fit(X[:, :, :1], Y, epochs=1)
    with pytest.raises(ValueError, match=r"tbptt: expected k2 >= k1 in \(k1, k2\), got \(3, 2\)"):
        model.fit(X, Y, epochs=1, tbptt=(3, 2))
    with pytest.raises(TypeError, match="epochs: expected a positive int, got float"):
        model.fit(X, Y, epochs=1.5)
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        model.fit(X, Y, epochs=1, optimizer="adagrad")
    with pytest.raises(ValueError, match="loss: expected one of"):
        fastrnn.Model(fastrnn.GRU(2, 3), 2, loss="hinge")
    with pytest.raises(TypeError, match="core: expected a fastrnn cell, Bidirectional or DilatedRNN, got list"):
        fastrnn.Model([fastrnn.GRU(2, 3)], 2)
    with pytest.raises(ValueError, match="seed: expected None or an int >= 0, got -1"):
        fastrnn.Model(fastrnn.GRU(2, 3), 2, seed=-1)


def test_model_params_are_one_live_view():
    model = small_model(kind="stack")
    assert "core.1.weight_hh" in model.params and "head.weight" in model.params
    assert model.params["core.0.weight_ih"] is model.core.cells[0].params["weight_ih"]
    assert model.params["head.weight"].shape == (3, 3) and model.params["head.bias"].shape == (3,)


def test_predict_shapes_and_links():
    X, _ = small_data("softmax_cross_entropy", "all")
    probabilities = small_model().predict(X)
    assert probabilities.shape == (4, 7, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0)
    assert small_model(readout="last", loss="sigmoid_cross_entropy").predict(X).shape == (4, 3)


# -- tasks, data and the command line -----------------------------------------------------------

@pytest.mark.parametrize("name", [name for name, task in TASKS.items()
                                  if task.target is not None and task.small_reaches_target])
def test_task_reaches_its_target(name):
    if name.startswith("digits"):
        pytest.importorskip("sklearn")
    if name.startswith("mnist") and datasets.mnist_sample_path() is None:
        pytest.skip("needs the MNIST sample: pip install 'fastrnn[data]'")
    task = TASKS[name]
    train, test = task.data("small", seed=0)
    model = task.model(seed=0)
    model.fit(*train, epochs=task.epochs, progress=False, **task.fit_kwargs())
    report = task.report(model, train, test)
    assert report["reached"], report


def test_pixel_mnist_reads_one_pixel_per_step_through_nine_dilated_layers(tmp_path):
    (images, labels, test_images, _) = write_mnist(tmp_path, n_train=6, n_test=4)
    task = copy.copy(TASKS["pixel-mnist"])
    task.path = tmp_path
    (X, y), (Xt, _) = task.data()
    assert X.shape == (6, 784, 1) and X.dtype == np.float32 and Xt.shape == (4, 784, 1)
    pixels = images.reshape(6, 784).astype(np.float64)
    np.testing.assert_allclose(X[:, :, 0], (pixels - pixels.mean()) / pixels.std(), rtol=1e-6)  # row by row
    np.testing.assert_array_equal(y, labels)
    task.permute = True
    (P, _), (Pt, _) = task.data(seed=3)
    assert not np.array_equal(P, X)
    np.testing.assert_array_equal(np.sort(P, axis=1), np.sort(X, axis=1))  # the same pixels, reordered
    (P2, _), _ = task.data(seed=0)
    np.testing.assert_array_equal(P2, P)  # one fixed order, whatever the seed
    np.testing.assert_array_equal(Pt[:, :, 0], Xt[:, np.random.default_rng(PERMUTATION_SEED).permutation(784), 0])
    model = task.model()
    core = model.core
    assert core.dilations == tuple(2 ** i for i in range(9)) and core.dtype == np.float32
    assert [(c.input_size, c.hidden_size, type(c).__name__) for c in core.cells] == \
        [(1, 20, "GRU")] + [(20, 20, "GRU")] * 8
    assert model.readout == "last" and model.output_size == 10


def test_fastrnn_train_pixel_mnist_from_idx_files(tmp_path, capsys):
    """--mnist DIR reads a user's MNIST files (here a tiny random set) and --permute applies."""
    write_mnist(tmp_path, n_train=8, n_test=4)
    assert main(["train", "pixel-mnist", "--mnist", str(tmp_path), "--permute", "--epochs", "1",
                 "--hidden", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "data: 8 training and 4 test sequences of 784 steps" in out and "test accuracy" in out
    assert TASKS["pixel-mnist"].path is None and not TASKS["pixel-mnist"].permute  # the run's own copy


@pytest.mark.parametrize("argv, message", [
    (["train", "digits", "--mnist", "."], "--mnist applies to mnist01-sg and pixel-mnist only"),
    (["train", "mnist01-sg", "--permute"], "--permute applies to pixel-mnist only"),
])
def test_mnist_options_belong_to_the_mnist_tasks(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_copy_bits_error_counts_wrong_bits_per_output_step():
    from fastrnn.tasks import bits_error

    X, Y = datasets.copy_task(4, 3)

    class Oracle:  # predicts the targets, then one bit wrong in every output step of sequence 0
        def __init__(self, flip):
            self.flip = flip

        def predict(self, X):
            p = Y.copy()
            if self.flip:
                p[0, 4:, 0] = 1.0 - p[0, 4:, 0]
            return p

    assert bits_error(Oracle(False), X, Y) == 0.0
    assert bits_error(Oracle(True), X, Y) == pytest.approx(1 / 4)  # 3 of 12 output steps, one bit each


@pytest.mark.parametrize("tbptt, synthetic", [(None, False), (3, True)])
def test_copy_curriculum_lengthens_the_sequence_once_solved(tbptt, synthetic):
    lengths = []
    result = TASKS["copy"].curriculum(tbptt, synthetic, updates=800,
                                      report=lambda length, updates: lengths.append((length, updates)))
    assert result["updates"] == 800 and result["longest"] >= 1  # length 1 takes ~400 updates
    assert [length for length, _ in lengths] == list(range(1, result["longest"] + 1))
    assert result["solved_at"] == [updates for _, updates in lengths] == sorted(result["solved_at"])
    if result["at"] > result["longest"]:  # the length it stopped at is not solved yet
        assert result["at"] == result["longest"] + 1 and result["error"] >= TASKS["copy"].threshold
    else:
        assert result["at"] == result["longest"] and result["error"] < TASKS["copy"].threshold


def test_fastrnn_train_copy(capsys):
    assert main(["train", "copy", "--tbptt", "2", "--synthetic-gradients", "--updates", "100", "--hidden", "8"]) == 0
    assert "synthetic gradients(2): longest length solved" in capsys.readouterr().out
    assert main(["train", "copy", "--compare", "1", "--tbptt", "2", "--updates", "50", "--hidden", "8"]) == 0
    table = capsys.readouterr().out
    assert "| K | TBPTT(K) | synthetic gradients(K) |" in table and "\n| 2 | " in table and "| full BPTT | " in table
    assert main(["train", "copy", "--synthetic-gradients"]) == 2
    assert "--synthetic-gradients needs --tbptt K" in capsys.readouterr().err
    assert main(["train", "digits", "--updates", "5"]) == 2
    assert "--updates applies to the copy task only" in capsys.readouterr().err


def test_binary_addition_data_are_correct_and_held_out():
    (X, Y), (Xt, Yt) = datasets.binary_addition(300, 100, seed=1)
    weights = 2 ** np.arange(8)
    a, b, s = X[:, :, 0] @ weights, X[:, :, 1] @ weights, Y[:, :, 0] @ weights
    np.testing.assert_array_equal(a + b, s)
    train_pairs = set(zip(a, b))
    test_pairs = set(zip(Xt[:, :, 0] @ weights, Xt[:, :, 1] @ weights))
    assert not train_pairs & test_pairs


def test_text_from_a_user_file(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("The cat sat on the mat. The dog sat on the log, and the cat saw the dog!\n" * 5,
                    encoding="utf-8")
    (X, Y), (Xt, Yt), vocab = datasets.next_word(datasets.read_text(path), vocab_size=8, seq_len=4)
    assert vocab.tokens[0] == "<unk>" and vocab.tokens[1] == "the"
    assert X.shape[1:] == (4, 8) and Y.shape[1] == 4
    # Target t is input t + 1 of the same window.
    np.testing.assert_array_equal(X[:, 1:].argmax(-1), Y[:, :-1])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.read_text(tmp_path / "nope.txt")


def test_fastrnn_train_runs_and_reports(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "loss.png"
    assert main(["train", "binary-addition", "--epochs", "3", "--plot", str(plot), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "held-out bit accuracy" in out.out and "wall time" in out.out
    assert "training step (batch 16, forward + backward + update): numba" in out.out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.err == ""  # no progress bar when asked for none


def test_progress_bar_is_silent_when_not_a_terminal(capsys):
    model = small_model()
    model.fit(*small_data("softmax_cross_entropy", "all"), epochs=2, batch_size=2)
    assert capsys.readouterr().err == ""


def test_recall_comparison_runs_both_variants():
    """recall-sg has no target: it is measured (fastrnn train recall-sg --compare N). The table's
    machinery must train both variants, the synthetic one differently."""
    from fastrnn.tasks import compare

    (row,) = compare(TASKS["recall-sg"], [0], size="small", epochs=2)
    assert set(row) == {"seed", "tbptt", "tbptt_best", "sg", "sg_best"}
    assert 0.0 <= row["tbptt"] <= 1.0 and 0.0 <= row["sg"] <= 1.0


def test_a_refused_update_changes_nothing():
    """All or nothing: one parameter's non-finite update leaves every parameter and the state alone."""
    for optimizer in (fastrnn.SGD(0.1, momentum=0.9), fastrnn.Adam(0.1), fastrnn.RMSProp(0.1)):
        params = {"a": np.array([1.0, 2.0]), "b": np.array([3.0])}
        optimizer.step(params, {"a": np.array([0.5, -0.5]), "b": np.array([1.0])})
        before = {k: p.copy() for k, p in params.items()}
        state = {k: v.copy() for k, v in optimizer.state_arrays().items()}
        assert not optimizer.step(params, {"a": np.array([0.1, 0.1]), "b": np.array([np.nan])})
        for k in params:
            np.testing.assert_array_equal(params[k], before[k])
        for k, v in optimizer.state_arrays().items():
            np.testing.assert_array_equal(v, state[k])


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, backend):
    """A crash in the middle of epoch 3 loses only that epoch's partial work: resuming from the
    checkpoint of epoch 2 gives the uninterrupted run's parameters and history, bit for bit.

    The numpy backend runs the Python loop, killed at its 5th batch of epoch 3; the numba one the
    compiled loop, killed after its first block of epoch 3 has updated the parameters (an
    interrupt reaches Python between blocks)."""
    path = tmp_path / "run.npz"
    whole, history = _train(backend, epochs=4)
    calls = {"n": 0}
    if backend == "numpy":
        original = PythonLoop.batch

        def crashing(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2 * 13 + 5:  # 13 batches of 16 per epoch: the 5th batch of epoch 3
                raise KeyboardInterrupt("simulated kill")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(PythonLoop, "batch", crashing)
    else:
        original = CompiledLoop.run

        def crashing(self, X, targets, order, batch_size, first, last, out=None):
            result = original(self, X, targets, order, batch_size, first, last, out)
            calls["n"] += first == 0
            if calls["n"] == 3:  # epoch 3's first block is done
                raise KeyboardInterrupt("simulated kill")
            return result

        monkeypatch.setattr(CompiledLoop, "run", crashing)
    with pytest.raises(KeyboardInterrupt):
        _train(backend, epochs=4, checkpoint=path)
    monkeypatch.undo()
    resumed, resumed_history = _train(backend, epochs=4, seed=3, checkpoint=path, resume=True)
    assert resumed_history == history
    for name in whole.params:
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])


# -- reduction --------------------------------------------------------------------------------

@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_sum_reduction_scales_the_gradient_by_the_positions(loss, readout):
    """reduction="sum" minimises the summed loss: its gradient is P times the mean's, so SGD with
    lr on the sum takes the step SGD with P*lr takes on the mean (the classic programs' lr)."""
    X, Y = small_data(loss, readout)
    positions = X.shape[0] * (1 if readout == "last" else X.shape[1])
    models = []
    for reduction, lr in (("sum", 0.01), ("mean", 0.01 * positions)):
        model = fastrnn.Model(fastrnn.GRU(2, 3, seed=0), 3, loss=loss, readout=readout, reduction=reduction, seed=0)
        history = model.fit(X, Y, epochs=1, batch_size=len(X), optimizer=fastrnn.SGD(lr), progress=False)
        models.append((model, history))
    (summed, h_sum), (mean, h_mean) = models
    assert h_sum == h_mean  # the reported loss is the mean per position either way
    for name in mean.params:
        np.testing.assert_allclose(summed.params[name], mean.params[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_sum_reduction_is_saved_checked_and_shards_add_up(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    X, Y = small_data("softmax_cross_entropy", "all", N=6)
    model = fastrnn.Model(fastrnn.RNN(2, 3, seed=0), 3, reduction="sum", seed=0)
    model.save(tmp_path / "m.npz")
    assert fastrnn.load(tmp_path / "m.npz").reduction == "sum"
    with pytest.raises(ValueError, match="reduction: expected one of 'mean', 'sum', got 'total'"):
        fastrnn.Model(fastrnn.RNN(2, 3), 3, reduction="total")
    serial = fastrnn.Model(fastrnn.RNN(2, 3, seed=0), 3, reduction="sum", seed=0)
    serial.fit(X, Y, epochs=2, batch_size=6, optimizer=fastrnn.SGD(0.01), progress=False)
    with ThreadPoolExecutor(2) as pool:
        model.fit(X, Y, epochs=2, batch_size=6, optimizer=fastrnn.SGD(0.01), progress=False, executor=pool, shards=2)
    for name in model.params:
        np.testing.assert_allclose(model.params[name], serial.params[name], rtol=1e-12, err_msg=name)


def test_a_file_from_before_the_reduction_option_loads_as_mean(tmp_path):
    import json

    small_model().save(tmp_path / "m.npz")
    arrays = io.read_archive(tmp_path / "m.npz")
    meta = json.loads(str(arrays["meta"]))
    del meta["reduction"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    assert fastrnn.load(tmp_path / "old.npz").reduction == "mean"
