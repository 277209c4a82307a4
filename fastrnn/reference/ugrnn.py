"""Reference Update-Gate RNN (Collins, Sohl-Dickstein & Sussillo 2016) in plain NumPy.
Row blocks g (gate), c (candidate):

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh = [a_g, a_c]
    g = σ(a_g), c = tanh(a_c),   h_t = g ⊙ h_{t-1} + (1 - g) ⊙ c,   y_t = h_t

Same function names and signatures as :mod:`fastrnn.kernels.ugrnn`; shares no code with them.
The tape is ``hs (T+1, B, H)`` and ``cache (T, B, 2H)`` = g, c.
"""

import numpy as np

from ._common import AffineGrads, bptt, copy_into, sigmoid


def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    """Returns ``y (T, B, H)``, ``h_n (B, H)`` and the tape ``hs (T+1, B, H)``, ``cache (T, B, 2H)``."""
    hs, cache = [h0], []
    for t in range(x.shape[0]):
        a_g, a_c = np.split(x[t] @ weight_ih.T + bias_ih + hs[t] @ weight_hh.T + bias_hh, 2, axis=1)
        g, c = sigmoid(a_g), np.tanh(a_c)
        hs.append(g * hs[t] + (1.0 - g) * c)
        cache.append(np.concatenate([g, c], axis=1))
    hs = np.stack(hs).astype(x.dtype)
    return hs[1:].copy(), hs[-1].copy(), hs, np.stack(cache).astype(x.dtype)


def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate):
    """BPTT with the per-output horizon ``truncate``. Returns ``dW_ih, dW_hh, db_ih, db_hh, dx, dh0``."""
    grads = AffineGrads(weight_ih, weight_hh, bias_ih, bias_hh)
    dx = np.zeros_like(x)

    def back_step(t, dout, dstate):
        (dh,) = dstate
        dh_total = dout + dh
        g, c = np.split(cache[t], 2, axis=1)
        h_prev = hs[t]
        da = np.concatenate([
            dh_total * (h_prev - c) * g * (1.0 - g),   # gate
            dh_total * (1.0 - g) * (1.0 - c * c),      # candidate
        ], axis=1)
        grads.add(x[t], h_prev, da)
        dx[t] += da @ weight_ih
        return (da @ weight_hh + dh_total * g,)

    (dh0,) = bptt(back_step, dy, (dh_n,), truncate)
    return *grads.as_tuple(), dx, dh0


def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, y, h_n, hs, cache):
    """:func:`forward`, writing into given arrays."""
    copy_into((y, h_n, hs, cache), forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh))


def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays."""
    copy_into((dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0),
              backward(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate))
