"""Files are untrusted input: saved models and checkpoints that are damaged, truncated or crafted
are refused with a ValueError naming the file, before anything is allocated or changed, and never
take the interpreter down (issue 17)."""

import json
import os
import zipfile
from io import BytesIO

import numpy as np
import pytest

import fastrnn
from fastrnn import files, io, training


def _stack_model():
    core = fastrnn.DilatedRNN([fastrnn.Bidirectional(fastrnn.LSTM(2, 3, seed=0), fastrnn.RNN(2, 2, "relu", seed=1)),
                               fastrnn.IntersectionRNN(5, 4, seed=2)], [1, 3])
    return fastrnn.Model(core, 3, seed=4)


def _lstm_model(seed=0):
    return fastrnn.Model(fastrnn.LSTM(2, 3, seed=seed), 2, seed=seed)


def _data(N=6, T=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, 2)), rng.integers(0, 2, size=(N, T))


@pytest.fixture
def checkpoint(tmp_path):
    """An LSTM checkpoint with Adam state, written by fit."""
    path = tmp_path / "run.npz"
    _lstm_model().fit(*_data(), epochs=1, batch_size=3, optimizer=fastrnn.Adam(0.01), checkpoint=path,
                      progress=False)
    return path


def _snapshot(model, optimizer):
    params = {key: value.copy() for key, value in model.params.items()}
    state = {key: value.copy() for key, value in optimizer.state_arrays().items()}
    return params, state, model.seed


def _assert_unchanged(model, optimizer, snapshot):
    params, state, seed = snapshot
    for key, value in params.items():
        np.testing.assert_array_equal(model.params[key], value, err_msg=key)
    now = optimizer.state_arrays()
    assert now.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(now[key], value, err_msg=key)
    assert model.seed == seed


def _arrays(path):
    return io.read_archive(path)


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


# -- damaged files --------------------------------------------------------------------------

def test_every_flipped_byte_of_a_saved_model_is_refused_or_harmless(tmp_path):
    """Each position of a saved stack model flipped in turn: the file loads to the same model
    (a byte nothing reads, such as a timestamp) or is a ValueError naming the file."""
    model = _stack_model()
    path = tmp_path / "m.npz"
    model.save(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    refused = 0
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0xFF
        bad.write_bytes(bytes(damaged))
        try:
            loaded = fastrnn.load(bad)
        except ValueError as error:
            assert str(bad) in str(error), f"byte {i}: {error}"
            refused += 1
            continue
        for key in model.params:
            np.testing.assert_array_equal(loaded.params[key], model.params[key], err_msg=f"byte {i}: {key}")
    assert refused > len(data) // 2  # the CRCs and headers catch most


def test_a_truncated_model_file_is_refused_at_every_length(tmp_path):
    path = tmp_path / "m.npz"
    _stack_model().save(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    for n in range(len(data)):
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match="not a fastrnn model file"):
            fastrnn.load(bad)


def test_a_damaged_checkpoint_never_half_resumes(tmp_path, checkpoint):
    """A seeded sample of flipped bytes and truncations of a checkpoint: it restores whole, or is
    refused with the model and the optimizer exactly as they were."""
    data = checkpoint.read_bytes()
    rng = np.random.default_rng(17)
    bad = tmp_path / "bad.npz"
    flips = rng.choice(len(data), size=min(len(data), 1200), replace=False)
    cuts = rng.choice(len(data), size=200, replace=False)
    for how, position in [("flip", int(i)) for i in flips] + [("cut", int(i)) for i in cuts]:
        damaged = bytearray(data)
        if how == "flip":
            damaged[position] ^= 0xFF
        else:
            del damaged[position:]
        bad.write_bytes(bytes(damaged))
        model, optimizer = _lstm_model(seed=9), fastrnn.Adam(0.01)
        before = _snapshot(model, optimizer)
        try:
            training.restore_checkpoint(model, optimizer, bad)
        except ValueError as error:
            assert str(bad) in str(error), f"{how} at {position}: {error}"
            _assert_unchanged(model, optimizer, before)


# -- not fastrnn files at all ---------------------------------------------------------------

def test_a_npy_file_or_random_bytes_are_a_clear_value_error(tmp_path):
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"weights\.npy: not a fastrnn model file \(not an \.npz archive"):
        fastrnn.load(npy)
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="not a fastrnn model file") as caught:
        fastrnn.load(noise)
    assert "allow_pickle" not in str(caught.value)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array(json.dumps({"format": files.FORMAT})), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds object data"):
        fastrnn.load(pickled)
    with pytest.raises(ValueError, match="not a fastrnn model file"):
        fastrnn.load(tmp_path)  # a directory


# -- crafted descriptions -------------------------------------------------------------------

def _with_meta(tmp_path, name, edit):
    path = tmp_path / "m.npz"
    _lstm_model().save(path)
    arrays = _arrays(path)
    meta = json.loads(str(arrays["meta"]))
    edited = edit(meta)
    arrays["meta"] = np.array(edited if isinstance(edited, str) else json.dumps(edited))
    return _write(tmp_path / name, arrays)


@pytest.mark.parametrize("edit, message", [
    (lambda m: {**m, "core": {**m["core"], "hidden_size": 10**8}}, r"param/core.weight_ih has shape \(12, 2\)"),
    (lambda m: {**m, "core": {**m["core"], "hidden_size": 10**12}}, "sizes from 1 to"),
    (lambda m: {**m, "output_size": 10**8}, r"param/head.weight has shape"),
    (lambda m: {**m, "core": {"kind": "DilatedRNN", "cells": [m["core"]] * 10**5, "dilations": [1] * 10**5}},
     "do not match the architecture"),
    (lambda m: {**m, "core": {**m["core"], "hidden_size": "3"}}, "sizes from 1 to"),
    (lambda m: {**m, "core": {**m["core"], "hidden_size": True}}, "sizes from 1 to"),
    (lambda m: {**m, "core": {**m["core"], "hidden_size": -3}}, "sizes from 1 to"),
    (lambda m: {**m, "core": {**m["core"], "extra": 1}}, "needs exactly"),
    (lambda m: {**m, "core": {"kind": "Transformer"}}, "unknown or misplaced layer kind 'Transformer'"),
    (lambda m: {**m, "core": {"kind": "Bidirectional", "forward": {"kind": "Bidirectional"}, "backward": {}}},
     "misplaced layer kind 'Bidirectional'"),
    (lambda m: {**m, "core": [1, 2]}, "core is not a description"),
    (lambda m: {**m, "dtype": "float16"}, "dtype 'float16'"),
    (lambda m: {**m, "seed": -1}, "seed -1"),
    (lambda m: {**m, "loss": "hinge"}, "cannot be built"),
    (lambda m: '{"format": "fastrnn.model/1", "core": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "unreadable 'meta': RecursionError"),
    (lambda m: "[" * 100_000 + "]" * 100_000, "unreadable 'meta'|got format"),
    (lambda m: '{"format": "fastrnn.model/1", "core": ' + '{"kind": "DilatedRNN", "cells": [' * 50_000 + "]}" * 50_000
     + "}", "unreadable 'meta'"),
], ids=["hidden-1e8", "hidden-1e12", "output-1e8", "1e5-layers", "size-str", "size-bool", "size-negative",
        "extra-key", "unknown-kind", "nested-bidirectional", "core-list", "dtype", "seed", "loss",
        "deep-nesting", "deep-list", "deep-stacks"])
def test_crafted_descriptions_are_refused_before_anything_is_built(tmp_path, edit, message):
    path = _with_meta(tmp_path, "crafted.npz", edit)
    with pytest.raises(ValueError, match=message) as caught:
        fastrnn.load(path)
    assert str(path) in str(caught.value)


def test_a_member_claiming_more_data_than_it_holds_is_refused_without_allocating(tmp_path):
    """An .npy header may claim any shape; the reader compares it with the member's size first
    (NumPy's own reader allocates the claimed array, here 8 PB, before reading)."""
    path = tmp_path / "m.npz"
    _lstm_model().save(path)
    crafted = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(crafted, "w") as target:
        for member in source.namelist():
            data = source.read(member)
            if member == "param/head.bias.npy":
                header = BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                              "shape": (10**15,)})
                data = header.getvalue() + data[-16:]
            target.writestr(member, data)
    with pytest.raises(ValueError, match=r"head.bias.npy' claims shape \(1000000000000000,\)") as caught:
        fastrnn.load(crafted)
    assert str(crafted) in str(caught.value)


# -- tampered training state ----------------------------------------------------------------

@pytest.mark.parametrize("tamper, message", [
    (lambda a: {**a, "optimizer/m/core.weight_hh": np.zeros((3, 3))}, r"'m/core.weight_hh' has shape \(3, 3\)"),
    (lambda a: {**a, "optimizer/v/head.bias": np.zeros(10**4)}, r"'v/head.bias' has shape \(10000,\)"),
    (lambda a: {**a, "optimizer/m/core.weight_hh": a["optimizer/m/core.weight_hh"].astype(np.float32)},
     "dtype float32"),
    (lambda a: {k: x for k, x in a.items() if not k.startswith("optimizer/")}, "expected 'steps'"),
    (lambda a: {k: x for k, x in a.items() if k != "optimizer/steps"}, "expected 'steps'"),
    (lambda a: {k: x for k, x in a.items() if k != "optimizer/v/core.bias_ih"}, "'core.bias_ih' lacks its v state"),
    (lambda a: {**a, "optimizer/steps": np.array(-1)}, "expected 'steps'"),
    (lambda a: {**a, "optimizer/steps": np.array([1, 2])}, "expected 'steps'"),
    (lambda a: {**a, "optimizer/velocity/head.bias": np.zeros(2)}, "'velocity/head.bias' is not a state of Adam"),
    (lambda a: {**a, "optimizer/m/nothing": np.zeros(2)}, "'m/nothing' belongs to no parameter"),
    (lambda a: {**a, "optimizer/m/head.bias": np.array(["a", "b"])}, "is not a float32 or float64 array"),
], ids=["shape", "longer", "dtype", "no-state", "no-steps", "missing-slot", "negative-steps", "steps-array",
        "foreign-slot", "foreign-name", "text"])
def test_tampered_optimizer_state_is_refused_and_changes_nothing(tmp_path, checkpoint, tamper, message):
    """These once crashed the interpreter (Adam's update wrote past a short state array) or
    overwrote the parameters before failing with a KeyError."""
    path = _write(tmp_path / "tampered.npz", tamper(_arrays(checkpoint)))
    model, optimizer = _lstm_model(seed=9), fastrnn.Adam(0.01)
    before = _snapshot(model, optimizer)
    with pytest.raises(ValueError, match=message):
        training.restore_checkpoint(model, optimizer, path)
    _assert_unchanged(model, optimizer, before)
    # Through fit, as a user resumes.
    with pytest.raises(ValueError, match=message):
        model.fit(*_data(), epochs=2, batch_size=3, optimizer=optimizer, checkpoint=path, resume=True,
                  progress=False)
    _assert_unchanged(model, optimizer, before)


@pytest.mark.parametrize("edit, message", [
    (lambda m: {**m, "epoch": "1"}, "epoch '1'"),
    (lambda m: {**m, "history": {"metrics": {"loss": ["x"]}, "seconds": []}}, "history"),
    (lambda m: {**m, "history": None}, "history"),
    (lambda m: {**m, "optimizer": "Adam"}, "was written with None"),
], ids=["epoch", "metrics", "no-history", "optimizer-text"])
def test_a_checkpoint_with_a_tampered_history_is_refused(tmp_path, checkpoint, edit, message):
    arrays = _arrays(checkpoint)
    arrays["meta"] = np.array(json.dumps(edit(json.loads(str(arrays["meta"])))))
    path = _write(tmp_path / "tampered.npz", arrays)
    model, optimizer = _lstm_model(seed=9), fastrnn.Adam(0.01)
    before = _snapshot(model, optimizer)
    with pytest.raises(ValueError, match=message):
        training.restore_checkpoint(model, optimizer, path)
    _assert_unchanged(model, optimizer, before)


def test_a_good_checkpoint_still_restores(checkpoint):
    model, optimizer = _lstm_model(seed=9), fastrnn.Adam(0.01)
    epoch, history = training.restore_checkpoint(model, optimizer, checkpoint)
    assert epoch == 1 and len(history["loss"]) == 1 and optimizer.steps == 2
    assert set(optimizer.state) == set(model.params)


# -- optimizers as public API -----------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: fastrnn.SGD(0.1, momentum=0.9), fastrnn.Adam, fastrnn.RMSProp],
                         ids=["sgd", "adam", "rmsprop"])
def test_optimizer_step_checks_every_gradient_against_its_parameter(make):
    """A shorter gradient was read past its end (once writing -6.9e-311 into the parameters), a
    longer one silently truncated."""
    params = {"w": np.ones(5), "b": np.ones(2)}
    optimizer = make()
    for bad, error in [(np.ones(3), ValueError), (np.ones(7), ValueError), (np.ones((5, 1)), ValueError),
                       (np.ones(5, complex), TypeError), ("fives", TypeError)]:
        with pytest.raises(error, match=r"grads\['w'\]"):
            optimizer.step(params, {"b": np.ones(2), "w": bad})
        np.testing.assert_array_equal(params["w"], np.ones(5))
        np.testing.assert_array_equal(params["b"], np.ones(2))
        assert optimizer.steps == 0
    with pytest.raises(ValueError, match=r"grads\['x'\]: no parameter of that name"):
        optimizer.step(params, {"x": np.ones(5)})
    with pytest.raises(ValueError, match=r"params\['w'\]: expected a writeable, C-contiguous"):
        optimizer.step({"w": np.ones(10)[::2]}, {"w": np.ones(5)})
    # A float32 or integer gradient of the right shape is converted, as everywhere in fastrnn.
    assert optimizer.step(params, {"w": np.ones(5, np.float32), "b": np.ones(2, int)})
    assert params["w"].dtype == np.float64 and (params["w"] < 1).all()


def test_optimizer_state_loaded_by_hand_is_checked_against_the_parameters():
    params = {"w": np.ones(5)}
    adam = fastrnn.Adam()
    adam.step(params, {"w": np.ones(5)})
    state = adam.state_arrays()
    other = fastrnn.Adam()
    with pytest.raises(ValueError, match=r"'m/w' has shape \(3,\)"):
        other.load_state_arrays({**state, "m/w": np.zeros(3)}, params)
    assert other.steps == 0 and other.state == {}
    other.load_state_arrays(state, params)
    assert other.steps == 1
    # A state array that no longer fits its parameter (the parameter was replaced) is refused at step.
    with pytest.raises(ValueError, match="optimizer state m/w"):
        other.step({"w": np.ones(4)}, {"w": np.ones(4)})


# -- paths ---------------------------------------------------------------------------------

def test_a_checkpoint_in_a_missing_directory_fails_before_training(tmp_path):
    model = _lstm_model()
    before = {key: value.copy() for key, value in model.params.items()}
    path = tmp_path / "no" / "such" / "run.npz"
    with pytest.raises(ValueError, match=f"checkpoint: cannot write {str(path)!r}: its directory"):
        model.fit(*_data(), epochs=1, batch_size=3, checkpoint=path, progress=False)
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value)
    with pytest.raises(FileNotFoundError, match=f"cannot write {str(path)!r}") as caught:
        model.save(path)
    assert ".tmp" not in str(caught.value)
    assert not os.path.exists(path.parent)
