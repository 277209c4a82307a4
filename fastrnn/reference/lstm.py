"""Reference LSTM in plain NumPy, exactly PyTorch's ``nn.LSTM`` (one layer). Row blocks i, f, g, o:

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh = [a_i, a_f, a_g, a_o]
    i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t),   y_t = h_t

The state is the pair (h, c). Same function names and signatures as :mod:`fastrnn.kernels.lstm`;
shares no code with them. The tape is ``hs``, ``cs (T+1, B, H)`` and ``cache (T, B, 5H)`` =
i, f, g, o and tanh(c_t).
"""

import numpy as np

from ._common import AffineGrads, bptt, copy_into, sigmoid


def forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
    """Returns ``y, h_n, c_n`` and the tape ``hs, cs (T+1, B, H), cache (T, B, 5H)``."""
    hs, cs, cache = [h0], [c0], []
    for t in range(x.shape[0]):
        a_i, a_f, a_g, a_o = np.split(x[t] @ weight_ih.T + bias_ih + hs[t] @ weight_hh.T + bias_hh, 4, axis=1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c = f * cs[t] + i * g
        tanh_c = np.tanh(c)
        cs.append(c)
        hs.append(o * tanh_c)
        cache.append(np.concatenate([i, f, g, o, tanh_c], axis=1))
    hs = np.stack(hs).astype(x.dtype)
    cs = np.stack(cs).astype(x.dtype)
    return hs[1:].copy(), hs[-1].copy(), cs[-1].copy(), hs, cs, np.stack(cache).astype(x.dtype)


def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cs, cache, dy, dh_n, dc_n, truncate):
    """BPTT with the per-output horizon ``truncate`` (it cuts the h and the c path alike).

    Returns ``dW_ih, dW_hh, db_ih, db_hh, dx, dh0, dc0``.
    """
    grads = AffineGrads(weight_ih, weight_hh, bias_ih, bias_hh)
    dx = np.zeros_like(x)

    def back_step(t, dout, dstate):
        dh, dc = dstate
        i, f, g, o, tanh_c = np.split(cache[t], 5, axis=1)
        dh_total = dout + dh
        dc_total = dc + dh_total * o * (1.0 - tanh_c * tanh_c)
        da = np.concatenate([
            dc_total * g * i * (1.0 - i),          # input gate
            dc_total * cs[t] * f * (1.0 - f),      # forget gate
            dc_total * i * (1.0 - g * g),          # candidate
            dh_total * tanh_c * o * (1.0 - o),     # output gate
        ], axis=1)
        grads.add(x[t], hs[t], da)
        dx[t] += da @ weight_ih
        return da @ weight_hh, dc_total * f

    dh0, dc0 = bptt(back_step, dy, (dh_n, dc_n), truncate)
    return *grads.as_tuple(), dx, dh0, dc0


def forward_into(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, y, h_n, c_n, hs, cs, cache):
    """:func:`forward`, writing into given arrays."""
    copy_into((y, h_n, c_n, hs, cs, cache), forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh))


def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cs, cache, dy, dh_n, dc_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0, dc0):
    """:func:`backward`, writing the gradients into given arrays."""
    copy_into((dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0, dc0),
              backward(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cs, cache, dy, dh_n, dc_n, truncate))
