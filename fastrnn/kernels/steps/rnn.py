"""Vanilla RNN step: h' = f(a), a = x W_ih^T + b_ih + h W_hh^T + b_hh, f chosen by ``option``."""

from .._jit import inlined
from .._math import relu, sigmoid, tanh

TANH, RELU, SIGMOID = 0, 1, 2


@inlined
def forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    B, H = hp.shape
    for b in range(B):
        for i in range(H):
            a = xp[t, b, i] + b_ih[i] + hp[b, i] + b_hh[i]
            if option == TANH:
                v = tanh(a)
            elif option == RELU:
                v = relu(a)
            else:
                v = sigmoid(a)
            hs[t + 1, b, i] = v
            ys[t, b, i] = v


@inlined
def backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    R, H = dh.shape
    B = hs.shape[1]
    for r in range(R):
        b = r % B
        for i in range(H):
            g = dout[r, i] + dh[r, i]
            v = hs[t + 1, b, i]
            # Derivatives written in terms of the output v = f(a), as PyTorch does.
            if option == TANH:
                gi[r, i] = g * (1.0 - v * v)
            elif option == RELU:
                gi[r, i] = g if v > 0 else 0.0
            else:
                gi[r, i] = g * v * (1.0 - v)
            dh_direct[r, i] = 0.0
