"""LSTM step (PyTorch's): blocks i, f, g, o; the second state ``cs`` is the cell state c.

cache[t] holds i, f, g, o and tanh(c_t).
"""

from .._jit import inlined
from .._math import tanh
from ._blocks import ACT_SIGMOID, ACT_TANH, activate

# The cell's layout: the one place these are defined. fastrnn.cells, the cell's kernels, the driver
# and the compiled training loop read them (the tape's array shapes: steps.tape_shapes).
GATES = 4  # gate blocks of H rows in W_ih, W_hh, b_ih, b_hh: i, f, g, o
STATES = ("h", "c")  # the parts of the recurrent state
TAPE = ("hs", "cs", "cache")  # what forward records for backward, in the kernels' argument order
CACHE = 5  # columns of the cache per step, in units of H
SEPARATE_HH = False  # gh is gi: both pre-activations get the same gradient
DIRECT_INPUT = False  # dx is the input GEMM alone
DIRECT_HIDDEN = False  # h_{t-1} reaches the step through W_hh alone (c has its own path)


@inlined
def forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    G = hp.shape[1]
    H = G // 4
    for b in range(lo, hi):
        # Short loops over few arrays each, so that each one vectorises (see _blocks).
        activate(ACT_SIGMOID, t, b, 0, 2 * H, xp, b_ih, hp, b_hh, cache)  # i, f
        activate(ACT_TANH, t, b, 2 * H, 3 * H, xp, b_ih, hp, b_hh, cache)  # g
        activate(ACT_SIGMOID, t, b, 3 * H, 4 * H, xp, b_ih, hp, b_hh, cache)  # o
        a = cache[t, b]
        ig, fg, gg, og, tanh_c = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:4 * H], a[4 * H:]
        c_prev, c_new, h_new, y = cs[t, b], cs[t + 1, b], hs[t + 1, b], ys[t, b]
        for i in range(H):
            c_new[i] = fg[i] * c_prev[i] + ig[i] * gg[i]
        for i in range(H):
            tanh_c[i] = tanh(c_new[i])
        for i in range(H):
            h = og[i] * tanh_c[i]
            h_new[i] = h
            y[i] = h


@inlined
def backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    one = hs.dtype.type(1.0)
    H = dh.shape[1]
    B = hs.shape[1]
    for row in range(lo, hi):
        b = row % B
        a = cache[t, b]
        ig, fg, gg, og, tanh_c = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:4 * H], a[4 * H:]
        c_prev, d_out, d_h, d_c, d_c_prev = cs[t, b], dout[row], dh[row], dc[row], dc_prev[row]
        gi_i, gi_f, gi_g, gi_o = gi[row, :H], gi[row, H:2 * H], gi[row, 2 * H:3 * H], gi[row, 3 * H:]
        for i in range(H):
            dh_total = d_out[i] + d_h[i]
            dc_total = d_c[i] + dh_total * og[i] * (one - tanh_c[i] * tanh_c[i])
            gi_i[i] = dc_total * gg[i] * ig[i] * (one - ig[i])
            gi_f[i] = dc_total * c_prev[i] * fg[i] * (one - fg[i])
            gi_g[i] = dc_total * ig[i] * (one - gg[i] * gg[i])
            gi_o[i] = dh_total * tanh_c[i] * og[i] * (one - og[i])
            d_c_prev[i] = dc_total * fg[i]
