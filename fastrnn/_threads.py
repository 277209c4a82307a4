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


# Numba's threading layers start a parallel loop in about 2 µs (OpenMP, TBB) or about 120 µs (the
# workqueue, measured on 2 cores): a kernel's per-step loops are worth sharing out on the first two only.
_FAST_LAYERS = ("omp", "tbb")
_fast_layer = None


def steps_may_split():
    """Whether the kernels may share each step out over threads now: more than one Numba thread
    allowed in the calling thread, on a threading layer that starts parallel loops quickly."""
    global _fast_layer
    if numba.get_num_threads() < 2:  # which also loads the layer, if no kernel has yet
        return False
    if _fast_layer is None:
        if numba.config.DISABLE_JIT:  # plain Python: nothing runs in parallel
            return False
        _fast_layer = numba.threading_layer() in _FAST_LAYERS
    return _fast_layer
