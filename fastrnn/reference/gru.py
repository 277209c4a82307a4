"""Reference GRU in plain NumPy, exactly PyTorch's ``nn.GRU`` (one layer). Row blocks r, z, n:

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1},   y_t = h_t

Same function names and signatures as :mod:`fastrnn.kernels.gru`; shares no code with them.
The tape is ``hs (T+1, B, H)`` and ``cache (T, B, 4H)`` = r, z, n and W_hn h_{t-1} + b_hn.
"""

import numpy as np

from ._common import AffineGrads, bptt, copy_into, sigmoid


def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    """Returns ``y (T, B, H)``, ``h_n (B, H)`` and the tape ``hs (T+1, B, H)``, ``cache (T, B, 4H)``."""
    hs, cache = [h0], []
    for t in range(x.shape[0]):
        xr, xz, xn = np.split(x[t] @ weight_ih.T + bias_ih, 3, axis=1)
        hr, hz, hn = np.split(hs[t] @ weight_hh.T + bias_hh, 3, axis=1)
        r = sigmoid(xr + hr)
        z = sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        hs.append((1.0 - z) * n + z * hs[t])
        cache.append(np.concatenate([r, z, n, hn], axis=1))
    hs = np.stack(hs).astype(x.dtype)
    return hs[1:].copy(), hs[-1].copy(), hs, np.stack(cache).astype(x.dtype)


def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, hs, cache, dy, dh_n, truncate):
    """BPTT with the per-output horizon ``truncate``. Returns ``dW_ih, dW_hh, db_ih, db_hh, dx, dh0``."""
    grads = AffineGrads(weight_ih, weight_hh, bias_ih, bias_hh)
    dx = np.zeros_like(x)

    def back_step(t, dout, dstate):
        (dh,) = dstate
        g = dout + dh  # gradient at h_t
        r, z, n, hn = np.split(cache[t], 4, axis=1)
        h_prev = hs[t]
        da_n = g * (1.0 - z) * (1.0 - n * n)        # at n's pre-activation
        da_z = g * (h_prev - n) * z * (1.0 - z)
        da_r = da_n * hn * r * (1.0 - r)
        d_input = np.concatenate([da_r, da_z, da_n], axis=1)       # at W_ih x + b_ih
        d_hidden = np.concatenate([da_r, da_z, da_n * r], axis=1)  # at W_hh h + b_hh
        grads.add(x[t], h_prev, d_input, d_hidden)
        dx[t] += d_input @ weight_ih
        return (d_hidden @ weight_hh + g * z,)

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
