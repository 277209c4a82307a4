"""Reference Intersection RNN, "+RNN" (Collins, Sohl-Dickstein & Sussillo 2016), in plain NumPy.
Row blocks gh, h, gy, y:

    x̃_t = W_in x_t + b_in   (when input_size != hidden_size; otherwise x̃_t = x_t)
    a_t = W_ih x̃_t + b_ih + W_hh h_{t-1} + b_hh = [a_gh, a_h, a_gy, a_y]
    gh = σ(a_gh), h̃ = tanh(a_h), gy = σ(a_gy), ỹ = relu(a_y)
    h_t = gh ⊙ h_{t-1} + (1 - gh) ⊙ h̃         (the state, fed back)
    y_t = gy ⊙ x̃_t + (1 - gy) ⊙ ỹ               (the output, not fed back)

Without the projection, ``weight_in`` has shape (0, I) and ``bias_in`` (0,). Same function names
and signatures as :mod:`fastrnn.kernels.intersection`; shares no code with them. The tape is
``xt (T, B, H)`` (x̃), ``hs (T+1, B, H)`` and ``cache (T, B, 4H)`` = gh, h̃, gy, ỹ.
"""

import numpy as np

from ._common import AffineGrads, bptt, copy_into, sigmoid


def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in):
    """Returns ``y (T, B, H)``, ``h_n (B, H)`` and the tape ``xt``, ``hs``, ``cache``."""
    xt = x @ weight_in.T + bias_in if weight_in.shape[0] else x.copy()
    hs, ys, cache = [h0], [], []
    for t in range(x.shape[0]):
        a_gh, a_h, a_gy, a_y = np.split(xt[t] @ weight_ih.T + bias_ih + hs[t] @ weight_hh.T + bias_hh, 4, axis=1)
        gh, h_new, gy, y_new = sigmoid(a_gh), np.tanh(a_h), sigmoid(a_gy), np.maximum(a_y, 0.0)
        hs.append(gh * hs[t] + (1.0 - gh) * h_new)
        ys.append(gy * xt[t] + (1.0 - gy) * y_new)
        cache.append(np.concatenate([gh, h_new, gy, y_new], axis=1))
    hs = np.stack(hs).astype(x.dtype)
    return np.stack(ys).astype(x.dtype), hs[-1].copy(), xt.astype(x.dtype), hs, np.stack(cache).astype(x.dtype)


def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, xt, hs, cache, dy, dh_n, truncate):
    """BPTT with the per-output horizon ``truncate``: y_t reads h_{t-1} inside step t, so with k = 0
    y_t's gradient reaches step t's weights and x_t but not h_{t-1} (for t >= 1).

    Returns ``dW_ih, dW_hh, db_ih, db_hh, dW_in, db_in, dx, dh0`` (dW_in, db_in empty without
    the projection).
    """
    grads = AffineGrads(weight_ih, weight_hh, bias_ih, bias_hh)
    dxt = np.zeros_like(xt)

    def back_step(t, dout, dstate):
        (dh,) = dstate  # dh at the state h_t; dout at the output y_t
        gh, h_new, gy, y_new = np.split(cache[t], 4, axis=1)
        h_prev = hs[t]
        da = np.concatenate([
            dh * (h_prev - h_new) * gh * (1.0 - gh),
            dh * (1.0 - gh) * (1.0 - h_new * h_new),
            dout * (xt[t] - y_new) * gy * (1.0 - gy),
            dout * (1.0 - gy) * (y_new > 0),
        ], axis=1)
        grads.add(xt[t], h_prev, da)
        dxt[t] += da @ weight_ih + dout * gy
        return (da @ weight_hh + dh * gh,)

    (dh0,) = bptt(back_step, dy, (dh_n,), truncate)
    if weight_in.shape[0]:
        dw_in = np.einsum("tbh,tbi->hi", dxt, x)
        db_in = dxt.sum(axis=(0, 1))
        dx = dxt @ weight_in
    else:
        dw_in, db_in, dx = np.zeros_like(weight_in), np.zeros_like(bias_in), dxt
    return *grads.as_tuple(), dw_in, db_in, dx, dh0


def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, y, h_n, xt, hs, cache):
    """:func:`forward`, writing into given arrays."""
    copy_into((y, h_n, xt, hs, cache), forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in))


def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, xt, hs, cache, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dweight_in, dbias_in, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays."""
    copy_into((dweight_ih, dweight_hh, dbias_ih, dbias_hh, dweight_in, dbias_in, dx, dh0),
              backward(x, weight_ih, weight_hh, bias_ih, bias_hh, weight_in, bias_in, xt, hs, cache, dy, dh_n,
                       truncate))
