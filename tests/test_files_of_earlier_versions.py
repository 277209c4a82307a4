"""Files written by an earlier version keep working: model files and a mid-run checkpoint that
commit 20c7d77 wrote (tests/data/write_files.py says how), with what that version computed from
them. They load, predict the same, and the checkpoint resumes to the uninterrupted history."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fastrnn

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "expected.npz") as data:
        return dict(data)


@pytest.mark.parametrize("name", ["rnn", "mixed"])
def test_an_earlier_model_file_loads_and_predicts_the_same(expected, name, backend):
    model = fastrnn.load(DATA / f"{name}_model.npz", backend=backend)
    assert model.reduction == "mean"  # written before the option existed
    # float64 kernels against the version that wrote the file: the same arithmetic; the
    # reference differs from the kernels in summation order only.
    np.testing.assert_allclose(model.predict(expected["X"]), expected[f"{name}_predict"], rtol=1e-10, atol=1e-13)


def test_an_earlier_checkpoint_resumes_to_the_uninterrupted_history(expected, tmp_path):
    checkpoint = tmp_path / "run.npz"
    shutil.copy(DATA / "lstm_checkpoint.npz", checkpoint)
    model = fastrnn.Model(fastrnn.LSTM(2, 3, seed=99), 3, seed=99)  # its init is overwritten
    history = model.fit(expected["X"], expected["Y"], epochs=4, batch_size=4, optimizer=fastrnn.Adam(0.05), tbptt=2,
                        checkpoint=checkpoint, resume=True, progress=False)
    recorded = json.loads(str(expected["lstm_history"]))
    assert history.keys() == recorded.keys()
    for key, values in recorded.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-10, err_msg=key)
    for name, values in json.loads(str(expected["lstm_params"])).items():
        np.testing.assert_allclose(model.params[name], values, rtol=1e-10, atol=1e-13, err_msg=name)
