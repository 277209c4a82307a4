"""Intersection RNN (+RNN) step (Collins et al. 2016): blocks gh, h, gy, y.

The state h and the output y are different things here: ``dh`` is the gradient at h_t, ``dout``
the one at y_t. y_t = gy ⊙ x̃_t + (1 - gy) ⊙ ỹ reads the step's input directly, so the backward
step adds gy ⊙ dout into ``dxt``. cache[t] holds gh, h̃, gy, ỹ.
"""

from .._jit import inlined
from ._blocks import RELU, SIGMOID, TANH, activate


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, G = hp.shape
    H = G // 4
    for b in range(B):
        # Short loops over few arrays each, so that each one vectorises (see _blocks).
        activate(SIGMOID, t, b, 0, H, xp, b_ih, hp, b_hh, cache)  # gh
        activate(TANH, t, b, H, 2 * H, xp, b_ih, hp, b_hh, cache)  # h̃
        activate(SIGMOID, t, b, 2 * H, 3 * H, xp, b_ih, hp, b_hh, cache)  # gy
        activate(RELU, t, b, 3 * H, 4 * H, xp, b_ih, hp, b_hh, cache)  # ỹ
        for i in range(H):
            g_h = cache[t, b, i]
            hs[t + 1, b, i] = g_h * hs[t, b, i] + (1.0 - g_h) * cache[t, b, H + i]
        for i in range(H):
            g_y = cache[t, b, 2 * H + i]
            ys[t, b, i] = g_y * xt[t, b, i] + (1.0 - g_y) * cache[t, b, 3 * H + i]


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for row in range(R):
        b = row % B
        for i in range(H):
            g_h = cache[t, b, i]
            h_new = cache[t, b, H + i]
            g_y = cache[t, b, 2 * H + i]
            y_new = cache[t, b, 3 * H + i]
            dstate = dh[row, i]
            dy = dout[row, i]
            gi[row, i] = dstate * (hs[t, b, i] - h_new) * g_h * (1.0 - g_h)
            gi[row, H + i] = dstate * (1.0 - g_h) * (1.0 - h_new * h_new)
            gi[row, 2 * H + i] = dy * (xt[t, b, i] - y_new) * g_y * (1.0 - g_y)
            gi[row, 3 * H + i] = dy * (1.0 - g_y) if y_new > 0 else 0.0
            dh_direct[row, i] = dstate * g_h
            dxt[t, b, i] += dy * g_y
