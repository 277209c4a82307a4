"""Vanilla RNN kernels: h' = f(W_ih x + b_ih + W_hh h + b_hh), f = tanh, relu or sigmoid.

Plain jitted functions, callable from Python and from your own ``@numba.njit`` code, with the same
names and signatures as :mod:`fastrnn.reference.rnn`. Arguments are C-contiguous arrays of one
float dtype, time-major; ``nonlinearity`` is :data:`TANH`, :data:`RELU` or :data:`SIGMOID`.
Nothing is validated here (:class:`fastrnn.RNN` does that): out-of-range codes mean sigmoid.
"""

import numpy as np

from ._driver import recur_backward, recur_forward
from ._jit import kernel
from .steps import RNN as CELL
from .steps.rnn import RELU, SIGMOID, TANH

#: ``nonlinearity`` codes: an int, because a string argument costs ~1.6 µs per call to unbox.
NONLINEARITIES = {"tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}


@kernel
def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity):
    """x (T, B, I), h0 (B, H) -> y (T, B, H), h_n (B, H), tape hs (T+1, B, H)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    hs = np.empty((T + 1, B, H), x.dtype)
    cs = np.empty((T + 1, B, 0), x.dtype)
    ys = np.empty((T, B, H), x.dtype)
    cache = np.empty((T, B, 0), x.dtype)
    recur_forward(CELL, nonlinearity, x, h0, cs[0], weight_ih, weight_hh, bias_ih, bias_hh,
                  hs, cs, ys, cache)
    return ys, hs[T].copy(), hs


@kernel
def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate):
    """Truncated BPTT (k >= 0, or -1 for full) -> dW_ih, dW_hh, db_ih, db_hh, dx (T, B, I), dh0 (B, H)."""
    T, B, _ = x.shape
    cs = np.empty((T + 1, B, 0), x.dtype)
    cache = np.empty((T, B, 0), x.dtype)
    dc_n = np.empty((B, 0), x.dtype)
    dw_ih, dw_hh, db_ih, db_hh, dx, dh0, _ = recur_backward(
        CELL, nonlinearity, False, x, weight_ih, weight_hh, hs, cs, cache, dy, dh_n, dc_n,
        truncate)
    return dw_ih, dw_hh, db_ih, db_hh, dx, dh0
