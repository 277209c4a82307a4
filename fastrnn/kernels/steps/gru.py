"""GRU step (PyTorch's): blocks r, z, n; b_hn enters inside the reset product.

cache[t] holds r, z, n and hn = W_hn h_{t-1} + b_hn, which the backward step needs for dr.
The hidden-side gradient differs from the input-side one in the n block (it is multiplied by r),
so the driver runs this cell with ``separate_hh``.
"""

from .._jit import inlined
from .._math import tanh
from ._blocks import SIGMOID, activate


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, G = hp.shape
    H = G // 3
    for b in range(B):
        activate(SIGMOID, t, b, 0, 2 * H, xp, b_ih, hp, b_hh, cache)  # r and z (short loops: see _blocks)
        for i in range(H):
            hn = hp[b, 2 * H + i] + b_hh[2 * H + i]
            cache[t, b, 3 * H + i] = hn
            cache[t, b, 2 * H + i] = tanh(xp[t, b, 2 * H + i] + b_ih[2 * H + i] + cache[t, b, i] * hn)
        for i in range(H):
            z = cache[t, b, H + i]
            h = (1.0 - z) * cache[t, b, 2 * H + i] + z * hs[t, b, i]
            hs[t + 1, b, i] = h
            ys[t, b, i] = h


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for row in range(R):
        b = row % B
        for i in range(H):
            g = dout[row, i] + dh[row, i]
            r = cache[t, b, i]
            z = cache[t, b, H + i]
            n = cache[t, b, 2 * H + i]
            hn = cache[t, b, 3 * H + i]
            da_n = g * (1.0 - z) * (1.0 - n * n)
            da_z = g * (hs[t, b, i] - n) * z * (1.0 - z)
            da_r = da_n * hn * r * (1.0 - r)
            gi[row, i] = da_r
            gi[row, H + i] = da_z
            gi[row, 2 * H + i] = da_n
            gh[row, i] = da_r
            gh[row, H + i] = da_z
            gh[row, 2 * H + i] = da_n * r
            dh_direct[row, i] = g * z
