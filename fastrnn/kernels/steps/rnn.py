"""Vanilla RNN step: h' = f(a), a = x W_ih^T + b_ih + h W_hh^T + b_hh, f chosen by ``option``."""

from .._jit import inlined
from .._math import relu, sigmoid, tanh

# The cell's layout: the one place these are defined. fastrnn.cells, the cell's kernels, the driver
# and the compiled training loop read them (the tape's array shapes: steps.tape_shapes).
GATES = 1  # gate blocks of H rows in W_ih, W_hh, b_ih, b_hh: the pre-activation
STATES = ("h",)  # the parts of the recurrent state
TAPE = ("hs",)  # what forward records for backward, in the kernels' argument order
CACHE = 0  # columns of the cache per step, in units of H
SEPARATE_HH = False  # gh is gi: both pre-activations get the same gradient
DIRECT_INPUT = False  # dx is the input GEMM alone
DIRECT_HIDDEN = False  # h_{t-1} reaches h_t through W_hh alone

#: ``option``, the nonlinearity: the codes of :data:`fastrnn.kernels.rnn.NONLINEARITIES`.
TANH, RELU, SIGMOID = 0, 1, 2

# The branch on ``option`` sits outside the element loops, one loop per nonlinearity: a branch
# inside the loop keeps LLVM from vectorising it (measured 2x slower at H = 16). Unlike the gated
# cells' steps, these loops index the arrays directly: each reads and writes different arrays, so
# they vectorise as they are, and per-row views cost more than they gave (100x1x2x16: 28 -> 46 µs).


@inlined
def forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    H = hp.shape[1]
    for b in range(lo, hi):
        if option == TANH:
            for i in range(H):
                hs[t + 1, b, i] = tanh(xp[t, b, i] + b_ih[i] + hp[b, i] + b_hh[i])
        elif option == RELU:
            for i in range(H):
                hs[t + 1, b, i] = relu(xp[t, b, i] + b_ih[i] + hp[b, i] + b_hh[i])
        else:
            for i in range(H):
                hs[t + 1, b, i] = sigmoid(xp[t, b, i] + b_ih[i] + hp[b, i] + b_hh[i])
        for i in range(H):
            ys[t, b, i] = hs[t + 1, b, i]


@inlined
def backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    one = hs.dtype.type(1.0)
    H = dh.shape[1]
    B = hs.shape[1]
    for r in range(lo, hi):
        b = r % B
        # Derivatives written in terms of the output v = f(a), as PyTorch does.
        if option == TANH:
            for i in range(H):
                v = hs[t + 1, b, i]
                gi[r, i] = (dout[r, i] + dh[r, i]) * (one - v * v)
        elif option == RELU:
            for i in range(H):
                gi[r, i] = dout[r, i] + dh[r, i] if hs[t + 1, b, i] > 0 else 0.0
        else:
            for i in range(H):
                v = hs[t + 1, b, i]
                gi[r, i] = (dout[r, i] + dh[r, i]) * v * (one - v)
