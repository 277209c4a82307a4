"""UGRNN kernels (Collins et al. 2016): row blocks g (gate), c (candidate)
(equations in :mod:`fastrnn.reference.ugrnn`).

Plain jitted functions with the same names and signatures as :mod:`fastrnn.reference.ugrnn`,
callable from Python and from your own ``@numba.njit`` code. The tape is ``hs (T+1, B, H)`` and
``cache (T, B, 2H)``. Nothing is validated here (:class:`fastrnn.UGRNN` does that).
"""

import numpy as np

from ._driver import copy_into, recurrences
from ._jit import THREADED, kernel, threaded
from .steps import UGRNN as CELL
from .steps.ugrnn import CACHE, SEPARATE_HH

# The driver's recurrences, calling this cell's steps.
recur_forward, recur_backward = recurrences(CELL)


@kernel
def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, y, h_n, hs, cache):
    """:func:`forward`, writing into given ``y (T, B, H)``, ``h_n (B, H)``, ``hs``, ``cache``."""
    T, B, _ = x.shape
    cs = np.empty((T + 1, B, 0), x.dtype)  # no second state
    recur_forward(CELL, 0, THREADED, x, h0, cs[0], weight_ih, weight_hh, bias_ih, bias_hh, hs, cs, y, cache)
    copy_into(hs[T], h_n)


@kernel
def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    """x (T, B, I), h0 (B, H) -> y (T, B, H), h_n (B, H), tape hs (T+1, B, H), cache (T, B, 2H)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    y = np.empty((T, B, H), x.dtype)
    h_n = np.empty((B, H), x.dtype)
    hs = np.empty((T + 1, B, H), x.dtype)
    cache = np.empty((T, B, CACHE * H), x.dtype)
    forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, y, h_n, hs, cache)
    return y, h_n, hs, cache


@kernel
def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays of the parameters' and inputs' shapes."""
    T, B, _ = x.shape
    cs = np.empty((T + 1, B, 0), x.dtype)
    none = np.empty((B, 0), x.dtype)
    recur_backward(CELL, 0, SEPARATE_HH, THREADED, x, weight_ih, weight_hh, hs, cs, cache, dy, dh_n, none, truncate,
                   dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0, none)


@kernel
def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate):
    """Truncated BPTT (k >= 0, or -1 for full) -> dW_ih, dW_hh, db_ih, db_hh, dx (T, B, I), dh0 (B, H)."""
    dweight_ih = np.empty_like(weight_ih)
    dweight_hh = np.empty_like(weight_hh)
    dbias_ih = np.empty_like(bias_ih)
    dbias_hh = np.empty_like(bias_hh)
    dx = np.empty_like(x)
    dh0 = np.empty_like(dh_n)
    backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0)
    return dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0


# Compiled on first use only, by calls large enough to share their steps out over threads
# (fastrnn.cells picks them; callable from your own code too, with the same arguments).
forward_into_threaded = threaded(forward_into)
backward_into_threaded = threaded(backward_into)
