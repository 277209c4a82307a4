"""LSTM step (PyTorch's): blocks i, f, g, o; the second state ``cs`` is the cell state c.

cache[t] holds i, f, g, o and tanh(c_t).
"""

from .._jit import inlined
from .._math import sigmoid, tanh


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, G = hp.shape
    H = G // 4
    for b in range(B):
        for i in range(H):
            ig = sigmoid(xp[t, b, i] + b_ih[i] + hp[b, i] + b_hh[i])
            fg = sigmoid(xp[t, b, H + i] + b_ih[H + i] + hp[b, H + i] + b_hh[H + i])
            gg = tanh(xp[t, b, 2 * H + i] + b_ih[2 * H + i] + hp[b, 2 * H + i] + b_hh[2 * H + i])
            og = sigmoid(xp[t, b, 3 * H + i] + b_ih[3 * H + i] + hp[b, 3 * H + i] + b_hh[3 * H + i])
            c = fg * cs[t, b, i] + ig * gg
            tanh_c = tanh(c)
            h = og * tanh_c
            cs[t + 1, b, i] = c
            hs[t + 1, b, i] = h
            ys[t, b, i] = h
            cache[t, b, i] = ig
            cache[t, b, H + i] = fg
            cache[t, b, 2 * H + i] = gg
            cache[t, b, 3 * H + i] = og
            cache[t, b, 4 * H + i] = tanh_c


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for row in range(R):
        b = row % B
        for i in range(H):
            ig = cache[t, b, i]
            fg = cache[t, b, H + i]
            gg = cache[t, b, 2 * H + i]
            og = cache[t, b, 3 * H + i]
            tanh_c = cache[t, b, 4 * H + i]
            dh_total = dout[row, i] + dh[row, i]
            dc_total = dc[row, i] + dh_total * og * (1.0 - tanh_c * tanh_c)
            gi[row, i] = dc_total * gg * ig * (1.0 - ig)
            gi[row, H + i] = dc_total * cs[t, b, i] * fg * (1.0 - fg)
            gi[row, 2 * H + i] = dc_total * ig * (1.0 - gg * gg)
            gi[row, 3 * H + i] = dh_total * tanh_c * og * (1.0 - og)
            dh_direct[row, i] = 0.0
            dc_prev[row, i] = dc_total * fg
