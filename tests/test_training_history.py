"""fit's numbers do not move when its machinery does: float64 histories and final parameters of
ten small runs equal the ones commit fd4351e recorded (tests/data/write_histories.py), before
the inner loop was compiled, within 1e-10 relative."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location("write_histories", DATA / "write_histories.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


@pytest.fixture(scope="module")
def recorded():
    with np.load(DATA / "histories.npz") as data:
        return {name: json.loads(str(data[name])) for name in data}


@pytest.mark.parametrize("case", cases.CASES, ids=lambda case: case[0])
def test_history_equals_the_recorded_one(recorded, case):
    history, params = cases.run(case)
    expected = recorded[case[0]]
    assert history.keys() == expected["history"].keys()
    for key, values in expected["history"].items():
        np.testing.assert_allclose(history[key], values, rtol=1e-10, atol=0, err_msg=key)
    assert params.keys() == expected["params"].keys()
    for name, values in expected["params"].items():
        np.testing.assert_allclose(params[name], values, rtol=1e-10, atol=1e-13, err_msg=name)
