"""The documentation's promises: the docstrings' Examples run, and the API reference lists every
public name."""

import doctest
from pathlib import Path

import pytest

import fastrnn
from fastrnn import cells, datasets, model, pytorch, stacks

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [cells, stacks, model, datasets, pytorch], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    if module is pytorch:
        pytest.importorskip("torch")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if module is not datasets:
        assert result.attempted > 0, f"{module.__name__} has no Examples to run"


def test_the_api_reference_lists_every_public_name():
    api = (ROOT / "docs" / "api.rst").read_text()
    listed = {line.strip() for line in api.splitlines() if line.startswith("   ") and not line.strip().startswith(":")}
    missing = [name for name in fastrnn.__all__ if name != "__version__" and name not in listed]
    assert not missing, f"docs/api.rst lacks {missing}"
