"""LSTM step (PyTorch's): blocks i, f, g, o; the second state ``cs`` is the cell state c.

cache[t] holds i, f, g, o and tanh(c_t).
"""

from .._jit import inlined
from .._math import tanh
from ._blocks import SIGMOID, TANH, activate


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, G = hp.shape
    H = G // 4
    for b in range(B):
        # Short loops over few arrays each, so that each one vectorises (see _blocks).
        activate(SIGMOID, t, b, 0, 2 * H, xp, b_ih, hp, b_hh, cache)  # i, f
        activate(TANH, t, b, 2 * H, 3 * H, xp, b_ih, hp, b_hh, cache)  # g
        activate(SIGMOID, t, b, 3 * H, 4 * H, xp, b_ih, hp, b_hh, cache)  # o
        for i in range(H):
            cs[t + 1, b, i] = cache[t, b, H + i] * cs[t, b, i] + cache[t, b, i] * cache[t, b, 2 * H + i]
        for i in range(H):
            cache[t, b, 4 * H + i] = tanh(cs[t + 1, b, i])
        for i in range(H):
            hs[t + 1, b, i] = cache[t, b, 3 * H + i] * cache[t, b, 4 * H + i]
        for i in range(H):
            ys[t, b, i] = hs[t + 1, b, i]


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
