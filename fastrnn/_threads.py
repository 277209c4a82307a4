"""Numba's thread count, scoped: a leaf module, so that both the benchmarks and the data-parallel
workers can use it without importing the package back."""

import contextlib

import numba


@contextlib.contextmanager
def numba_threads(n):
    """Run the block with ``n`` Numba threads allowed in the calling thread (:func:`numba.set_num_threads`
    is per thread), then restore the count it had."""
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def threading_layer():
    """The threading layer Numba runs parallel kernels on, or what it will choose, if none ran yet."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process yet
        return f"not started yet; NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER}"
