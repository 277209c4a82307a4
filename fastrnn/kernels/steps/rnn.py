"""Vanilla RNN step: h' = f(a), a = x W_ih^T + b_ih + h W_hh^T + b_hh, f chosen by ``option``."""

from .._jit import inlined
from .._math import relu, sigmoid, tanh

TANH, RELU, SIGMOID = 0, 1, 2

# The branch on ``option`` sits outside the element loops, one loop per nonlinearity: a branch
# inside the loop keeps LLVM from vectorising it (measured 2x slower at H = 16).


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, H = hp.shape
    for b in range(B):
        # One-dimensional views per operand, so that the loops vectorise (see _blocks).
        h, x, p, y = hs[t + 1, b], xp[t, b], hp[b], ys[t, b]
        if option == TANH:
            for i in range(H):
                h[i] = tanh(x[i] + b_ih[i] + p[i] + b_hh[i])
        elif option == RELU:
            for i in range(H):
                h[i] = relu(x[i] + b_ih[i] + p[i] + b_hh[i])
        else:
            for i in range(H):
                h[i] = sigmoid(x[i] + b_ih[i] + p[i] + b_hh[i])
        for i in range(H):
            y[i] = h[i]


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for r in range(R):
        v, d_out, d_h, g = hs[t + 1, r % B], dout[r], dh[r], gi[r]
        # Derivatives written in terms of the output v = f(a), as PyTorch does.
        if option == TANH:
            for i in range(H):
                g[i] = (d_out[i] + d_h[i]) * (1.0 - v[i] * v[i])
        elif option == RELU:
            for i in range(H):
                g[i] = d_out[i] + d_h[i] if v[i] > 0 else 0.0
        else:
            for i in range(H):
                g[i] = (d_out[i] + d_h[i]) * v[i] * (1.0 - v[i])
        dh_direct[r, :] = 0.0
