"""Vanilla RNN kernels: h' = f(W_ih x + b_ih + W_hh h + b_hh), f = tanh, relu or sigmoid.

Plain jitted functions, callable from Python and from your own ``@numba.njit`` code, with the same
names and signatures as :mod:`fastrnn.reference.rnn`. ``forward``/``backward`` return new arrays;
``forward_into``/``backward_into`` write into arrays you give, which is what to call from Python
in a loop: Numba spends ~0.4 µs handing each new array back to the interpreter.

Arguments are C-contiguous arrays of one float dtype, time-major; ``nonlinearity`` is
:data:`TANH`, :data:`RELU` or :data:`SIGMOID`. Nothing is validated here (:class:`fastrnn.RNN`
does that): out-of-range codes mean sigmoid.
"""

import numpy as np

from ._driver import copy_into, recurrences
from ._jit import THREADED, kernel, threaded
from .steps import RNN as CELL
from .steps.rnn import RELU, SEPARATE_HH, SIGMOID, TANH

# The driver's recurrences, calling this cell's steps.
recur_forward, recur_backward = recurrences(CELL)

#: ``nonlinearity`` codes: an int, because a string argument costs ~1.6 µs per call to unbox.
NONLINEARITIES = {"tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}


@kernel
def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, y, h_n, hs):
    """:func:`forward`, writing into given arrays ``y (T, B, H)``, ``h_n (B, H)``, ``hs (T+1, B, H)``."""
    T, B, _ = x.shape
    cs = np.empty((T + 1, B, 0), x.dtype)
    cache = np.empty((T, B, 0), x.dtype)
    recur_forward(CELL, nonlinearity, THREADED, x, h0, cs[0], weight_ih, weight_hh, bias_ih, bias_hh, hs, cs, y, cache)
    copy_into(hs[T], h_n)


@kernel
def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity):
    """x (T, B, I), h0 (B, H) -> y (T, B, H), h_n (B, H), tape hs (T+1, B, H)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    y = np.empty((T, B, H), x.dtype)
    h_n = np.empty((B, H), x.dtype)
    hs = np.empty((T + 1, B, H), x.dtype)
    forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, y, h_n, hs)
    return y, h_n, hs


@kernel
def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays of the parameters' and inputs' shapes."""
    T, B, _ = x.shape
    cs = np.empty((T + 1, B, 0), x.dtype)
    cache = np.empty((T, B, 0), x.dtype)
    dc_n = np.empty((B, 0), x.dtype)
    dc0 = np.empty((B, 0), x.dtype)
    recur_backward(CELL, nonlinearity, SEPARATE_HH, THREADED, x, weight_ih, weight_hh, hs, cs, cache, dy, dh_n, dc_n,
                   truncate, dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0, dc0)


@kernel
def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate):
    """Truncated BPTT (k >= 0, or -1 for full) -> dW_ih, dW_hh, db_ih, db_hh, dx (T, B, I), dh0 (B, H)."""
    dweight_ih = np.empty_like(weight_ih)
    dweight_hh = np.empty_like(weight_hh)
    dbias_ih = np.empty_like(bias_ih)
    dbias_hh = np.empty_like(bias_hh)
    dx = np.empty_like(x)
    dh0 = np.empty_like(dh_n)
    backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0)
    return dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0


# Compiled on first use only, by calls large enough to share their steps out over threads
# (fastrnn.cells picks them; callable from your own code too, with the same arguments).
forward_into_threaded = threaded(forward_into)
backward_into_threaded = threaded(backward_into)
