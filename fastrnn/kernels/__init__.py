"""Numba kernels, one module per cell, with the same function names and signatures as
:mod:`fastrnn.reference`. Plain jitted functions on arrays: callable from Python and from
your own ``@numba.njit`` code.
"""

# Every kernel module, so that all dispatchers exist before the cache check below.
from . import checks, gru, intersection, lstm, optim, rnn, ugrnn  # noqa: F401
from ._jit import invalidate_stale_cache

# After every kernel module is imported (so all dispatchers exist) and before any is compiled.
invalidate_stale_cache()

__all__ = ["rnn", "gru", "lstm", "ugrnn", "intersection"]
