"""Fixtures the tests share: the cell cases, the dtypes and the backends (helpers: tests/helpers.py)."""

import pytest

from fastrnn.registry import CASES

from .helpers import BACKENDS, DTYPES


@pytest.fixture(params=CASES, ids=str)
def case(request):
    return request.param


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param
