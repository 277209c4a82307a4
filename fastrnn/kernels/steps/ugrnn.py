"""Update-gate RNN step (Collins et al. 2016): blocks g (gate), c (candidate); cache[t] holds g, c."""

from .._jit import inlined
from ._blocks import ACT_SIGMOID, ACT_TANH, activate

# The cell's layout: the one place these are defined. fastrnn.cells, the cell's kernels, the driver
# and the compiled training loop read them (the tape's array shapes: steps.tape_shapes).
GATES = 2  # gate blocks of H rows in W_ih, W_hh, b_ih, b_hh: g, c
STATES = ("h",)  # the parts of the recurrent state
TAPE = ("hs", "cache")  # what forward records for backward, in the kernels' argument order
CACHE = 2  # columns of the cache per step, in units of H
SEPARATE_HH = False  # gh is gi: both pre-activations get the same gradient
DIRECT_INPUT = False  # dx is the input GEMM alone
DIRECT_HIDDEN = True  # h' = g * h + ...: the step writes dh_direct


@inlined
def forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    one = hs.dtype.type(1.0)
    G = hp.shape[1]
    H = G // 2
    for b in range(lo, hi):
        # Short loops over few arrays each, so that each one vectorises (see _blocks).
        activate(ACT_SIGMOID, t, b, 0, H, xp, b_ih, hp, b_hh, cache)  # g
        activate(ACT_TANH, t, b, H, 2 * H, xp, b_ih, hp, b_hh, cache)  # c
        gate, cand = cache[t, b, :H], cache[t, b, H:]
        h_prev, h_new, y = hs[t, b], hs[t + 1, b], ys[t, b]
        for i in range(H):
            h = gate[i] * h_prev[i] + (one - gate[i]) * cand[i]
            h_new[i] = h
            y[i] = h


@inlined
def backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    one = hs.dtype.type(1.0)
    H = dh.shape[1]
    B = hs.shape[1]
    for row in range(lo, hi):
        b = row % B
        gate, cand, h_prev = cache[t, b, :H], cache[t, b, H:], hs[t, b]
        d_out, d_h, d_direct = dout[row], dh[row], dh_direct[row]
        gi_g, gi_c = gi[row, :H], gi[row, H:]
        for i in range(H):
            g = gate[i]
            c = cand[i]
            dh_total = d_out[i] + d_h[i]
            gi_g[i] = dh_total * (h_prev[i] - c) * g * (one - g)
            gi_c[i] = dh_total * (one - g) * (one - c * c)
            d_direct[i] = dh_total * g
