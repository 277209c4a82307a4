"""Update-gate RNN step (Collins et al. 2016): blocks g (gate), c (candidate); cache[t] holds g, c."""

from .._jit import inlined
from ._blocks import SIGMOID, TANH, activate


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, G = hp.shape
    H = G // 2
    for b in range(B):
        # Short loops over few arrays each, so that each one vectorises (see _blocks).
        activate(SIGMOID, t, b, 0, H, xp, b_ih, hp, b_hh, cache)  # g
        activate(TANH, t, b, H, 2 * H, xp, b_ih, hp, b_hh, cache)  # c
        for i in range(H):
            g = cache[t, b, i]
            hs[t + 1, b, i] = g * hs[t, b, i] + (1.0 - g) * cache[t, b, H + i]
        for i in range(H):
            ys[t, b, i] = hs[t + 1, b, i]


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for row in range(R):
        b = row % B
        for i in range(H):
            g = cache[t, b, i]
            c = cache[t, b, H + i]
            dh_total = dout[row, i] + dh[row, i]
            gi[row, i] = dh_total * (hs[t, b, i] - c) * g * (1.0 - g)
            gi[row, H + i] = dh_total * (1.0 - g) * (1.0 - c * c)
            dh_direct[row, i] = dh_total * g
