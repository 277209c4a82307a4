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
        c = cache[t, b]
        r, z, n, hn = c[:H], c[H:2 * H], c[2 * H:3 * H], c[3 * H:]
        x_n, h_n, bi_n, bh_n = xp[t, b, 2 * H:], hp[b, 2 * H:], b_ih[2 * H:], b_hh[2 * H:]
        for i in range(H):
            hn[i] = h_n[i] + bh_n[i]
        for i in range(H):
            n[i] = tanh(x_n[i] + bi_n[i] + r[i] * hn[i])
        h_prev, h_new, y = hs[t, b], hs[t + 1, b], ys[t, b]
        for i in range(H):
            h = (1.0 - z[i]) * n[i] + z[i] * h_prev[i]
            h_new[i] = h
            y[i] = h


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for row in range(R):
        b = row % B
        c = cache[t, b]
        r, z, n, hn = c[:H], c[H:2 * H], c[2 * H:3 * H], c[3 * H:]
        h_prev, d_out, d_h, d_direct = hs[t, b], dout[row], dh[row], dh_direct[row]
        gi_r, gi_z, gi_n = gi[row, :H], gi[row, H:2 * H], gi[row, 2 * H:]
        gh_r, gh_z, gh_n = gh[row, :H], gh[row, H:2 * H], gh[row, 2 * H:]
        for i in range(H):
            g = d_out[i] + d_h[i]
            da_n = g * (1.0 - z[i]) * (1.0 - n[i] * n[i])
            da_z = g * (h_prev[i] - n[i]) * z[i] * (1.0 - z[i])
            da_r = da_n * hn[i] * r[i] * (1.0 - r[i])
            gi_r[i] = da_r
            gi_z[i] = da_z
            gi_n[i] = da_n
            gh_r[i] = da_r
            gh_z[i] = da_z
            gh_n[i] = da_n * r[i]
            d_direct[i] = g * z[i]
