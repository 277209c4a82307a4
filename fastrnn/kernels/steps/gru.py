"""GRU step (PyTorch's): blocks r, z, n; b_hn enters inside the reset product.

cache[t] holds r, z, n and hn = W_hn h_{t-1} + b_hn, which the backward step needs for dr.
The hidden-side gradient differs from the input-side one in the n block (it is multiplied by r),
so the driver runs this cell with ``separate_hh``.
"""

from .._jit import inlined
from .._math import sigmoid, tanh


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, G = hp.shape
    H = G // 3
    for b in range(B):
        for i in range(H):
            r = sigmoid(xp[t, b, i] + b_ih[i] + hp[b, i] + b_hh[i])
            z = sigmoid(xp[t, b, H + i] + b_ih[H + i] + hp[b, H + i] + b_hh[H + i])
            hn = hp[b, 2 * H + i] + b_hh[2 * H + i]
            n = tanh(xp[t, b, 2 * H + i] + b_ih[2 * H + i] + r * hn)
            h = (1.0 - z) * n + z * hs[t, b, i]
            hs[t + 1, b, i] = h
            ys[t, b, i] = h
            cache[t, b, i] = r
            cache[t, b, H + i] = z
            cache[t, b, 2 * H + i] = n
            cache[t, b, 3 * H + i] = hn


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
