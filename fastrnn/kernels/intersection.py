"""Intersection RNN (+RNN) kernels (Collins et al. 2016): row blocks gh, h, gy, y; per-step output
y, state h (equations in :mod:`fastrnn.reference.intersection`).

Plain jitted functions with the same names and signatures as :mod:`fastrnn.reference.intersection`,
callable from Python and from your own ``@numba.njit`` code. ``weight_in (H, I)``, ``bias_in (H)``
project the input when I != H; without the projection pass arrays of shape (0, I) and (0,).
The tape is ``xt (T, B, H)`` (the projected input x̃), ``hs (T+1, B, H)`` and ``cache (T, B, 4H)``.
Nothing is validated here (:class:`fastrnn.IntersectionRNN` does that).
"""

import numpy as np

from ._driver import copy_into, mm_ab, mm_abt, mm_atb, prepare, recurrences
from ._gemm import OVERWRITE, packed_shape, threads
from ._jit import THREADED, kernel, threaded
from .steps import INTERSECTION as CELL
from .steps.intersection import CACHE, SEPARATE_HH

# The driver's recurrences, calling this cell's steps.
recur_forward, recur_backward = recurrences(CELL)


@kernel
def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, y, h_n, xt, hs, cache):
    """:func:`forward`, writing into given ``y``, ``h_n``, ``xt``, ``hs``, ``cache``."""
    T, B, I = x.shape
    H = h0.shape[1]
    if weight_in.shape[0] == 0:
        copy_into(x.reshape(T * B, I), xt.reshape(T * B, H))
    else:
        # The projection of every step in one (T*B, I) x (I, H) product.
        flat = xt.reshape(T * B, H)
        mm_abt(x.reshape(T * B, I), weight_in, prepare(T * B, weight_in.T), flat, threads())
        for r in range(T * B):
            for i in range(H):
                flat[r, i] += bias_in[i]
    cs = np.empty((T + 1, B, 0), x.dtype)  # no second state
    recur_forward(CELL, 0, THREADED, xt, h0, cs[0], weight_ih, weight_hh, bias_ih, bias_hh, hs, cs, y, cache)
    copy_into(hs[T], h_n)


@kernel
def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in):
    """x (T, B, I), h0 (B, H) -> y (T, B, H), h_n (B, H), tape xt (T, B, H), hs (T+1, B, H), cache (T, B, 4H)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    y = np.empty((T, B, H), x.dtype)
    h_n = np.empty((B, H), x.dtype)
    xt = np.empty((T, B, H), x.dtype)
    hs = np.empty((T + 1, B, H), x.dtype)
    cache = np.empty((T, B, CACHE * H), x.dtype)
    forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, y, h_n, xt, hs, cache)
    return y, h_n, xt, hs, cache


@kernel
def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, xt, hs, cache, dy, dh_n,
                  truncate, dweight_ih, dweight_hh, dbias_ih, dbias_hh, dweight_in, dbias_in, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays of the parameters' and inputs' shapes."""
    T, B, I = x.shape
    H = dh_n.shape[1]
    cs = np.empty((T + 1, B, 0), x.dtype)
    none = np.empty((B, 0), x.dtype)
    project = weight_in.shape[0] > 0
    # Without the projection x̃ is x, and its gradient is dx itself.
    dxt = np.empty((T, B, H), x.dtype) if project else dx
    recur_backward(CELL, 0, SEPARATE_HH, THREADED, xt, weight_ih, weight_hh, hs, cs, cache, dy, dh_n, none, truncate,
                   dweight_ih, dweight_hh, dbias_ih, dbias_hh, dxt, dh0, none)
    if not project:
        return
    # Through the projection x̃ = x W_in^T + b_in, again as single products over the T*B rows.
    flat = dxt.reshape(T * B, H)
    x_rows = x.reshape(T * B, I)
    panels, rows, width = packed_shape(T * B, I, x)
    mm_atb(flat, x_rows, np.empty(panels * rows * width, x.dtype), dweight_in, OVERWRITE)
    dbias_in[...] = 0.0
    for r in range(T * B):
        for i in range(H):
            dbias_in[i] += flat[r, i]
    mm_ab(flat, weight_in, prepare(T * B, weight_in), dx.reshape(T * B, I), OVERWRITE, threads())


@kernel
def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, xt, hs, cache, dy, dh_n, truncate):
    """Truncated BPTT (k >= 0, or -1 for full) -> dW_ih, dW_hh, db_ih, db_hh, dW_in, db_in, dx, dh0."""
    dweight_ih = np.empty_like(weight_ih)
    dweight_hh = np.empty_like(weight_hh)
    dbias_ih = np.empty_like(bias_ih)
    dbias_hh = np.empty_like(bias_hh)
    dweight_in = np.empty_like(weight_in)
    dbias_in = np.empty_like(bias_in)
    dx = np.empty_like(x)
    dh0 = np.empty_like(dh_n)
    backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, xt, hs, cache, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dweight_in, dbias_in, dx, dh0)
    return dweight_ih, dweight_hh, dbias_ih, dbias_hh, dweight_in, dbias_in, dx, dh0


# Compiled on first use only, by calls large enough to share their steps out over threads
# (fastrnn.cells picks them; callable from your own code too, with the same arguments).
forward_into_threaded = threaded(forward_into)
backward_into_threaded = threaded(backward_into)
