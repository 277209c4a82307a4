"""Vanilla RNN step: h' = f(a), a = x W_ih^T + b_ih + h W_hh^T + b_hh, f chosen by ``option``."""

from .._jit import kernel
from .._math import relu, sigmoid, tanh

TANH, RELU, SIGMOID = 0, 1, 2


@kernel
def forward(option, xp, b_ih, hp, b_hh, h_prev, c_prev, x, h_new, c_new, y, cache):
    B, H = h_new.shape
    for b in range(B):
        for i in range(H):
            a = xp[b, i] + b_ih[i] + hp[b, i] + b_hh[i]
            if option == TANH:
                v = tanh(a)
            elif option == RELU:
                v = relu(a)
            else:
                v = sigmoid(a)
            h_new[b, i] = v
            y[b, i] = v


@kernel
def backward(option, x, h_prev, c_prev, h_new, c_new, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dx):
    R, H = dh.shape
    B = h_new.shape[0]
    for r in range(R):
        b = r % B
        for i in range(H):
            g = dout[r, i] + dh[r, i]
            v = h_new[b, i]
            # Derivatives written in terms of the output v = f(a), as PyTorch does.
            if option == TANH:
                gi[r, i] = g * (1.0 - v * v)
            elif option == RELU:
                gi[r, i] = g if v > 0 else 0.0
            else:
                gi[r, i] = g * v * (1.0 - v)
            dh_direct[r, i] = 0.0
