"""Intersection RNN (+RNN) step (Collins et al. 2016): blocks gh, h, gy, y.

The state h and the output y are different things here: ``dh`` is the gradient at h_t, ``dout``
the one at y_t. y_t = gy ⊙ x̃_t + (1 - gy) ⊙ ỹ reads the step's input directly, so the backward
step adds gy ⊙ dout into ``dxt``. cache[t] holds gh, h̃, gy, ỹ.
"""

from .._jit import inlined
from ._blocks import ACT_RELU, ACT_SIGMOID, ACT_TANH, activate

# The cell's layout: the one place these are defined. fastrnn.cells, the cell's kernels, the driver
# and the compiled training loop read them (the tape's array shapes: steps.tape_shapes).
GATES = 4  # gate blocks of H rows in W_ih, W_hh, b_ih, b_hh: gh, h, gy, y
STATES = ("h",)  # the parts of the recurrent state
TAPE = ("xt", "hs", "cache")  # what forward records for backward, in the kernels' argument order
CACHE = 4  # columns of the cache per step, in units of H
SEPARATE_HH = False  # gh is gi: both pre-activations get the same gradient
DIRECT_INPUT = True  # the backward step adds y's direct gradient gy * dout into dxt
DIRECT_HIDDEN = True  # h' = gh * h + ...: the step writes dh_direct


@inlined
def forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    one = hs.dtype.type(1.0)
    G = hp.shape[1]
    H = G // 4
    for b in range(lo, hi):
        # Short loops over few arrays each, so that each one vectorises (see _blocks).
        activate(ACT_SIGMOID, t, b, 0, H, xp, b_ih, hp, b_hh, cache)  # gh
        activate(ACT_TANH, t, b, H, 2 * H, xp, b_ih, hp, b_hh, cache)  # h̃
        activate(ACT_SIGMOID, t, b, 2 * H, 3 * H, xp, b_ih, hp, b_hh, cache)  # gy
        activate(ACT_RELU, t, b, 3 * H, 4 * H, xp, b_ih, hp, b_hh, cache)  # ỹ
        a = cache[t, b]
        gate_h, cand_h, gate_y, cand_y = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        h_prev, h_new, x, y = hs[t, b], hs[t + 1, b], xt[t, b], ys[t, b]
        for i in range(H):
            h_new[i] = gate_h[i] * h_prev[i] + (one - gate_h[i]) * cand_h[i]
        for i in range(H):
            y[i] = gate_y[i] * x[i] + (one - gate_y[i]) * cand_y[i]


@inlined
def backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    one = hs.dtype.type(1.0)
    H = dh.shape[1]
    B = hs.shape[1]
    for row in range(lo, hi):
        b = row % B
        a = cache[t, b]
        gate_h, cand_h, gate_y, cand_y = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        h_prev, x, d_out, d_h, d_direct, d_x = hs[t, b], xt[t, b], dout[row], dh[row], dh_direct[row], dxt[t, b]
        gi_gh, gi_h, gi_gy, gi_y = gi[row, :H], gi[row, H:2 * H], gi[row, 2 * H:3 * H], gi[row, 3 * H:]
        for i in range(H):
            g_h = gate_h[i]
            h_new = cand_h[i]
            g_y = gate_y[i]
            dstate = d_h[i]
            dy = d_out[i]
            gi_gh[i] = dstate * (h_prev[i] - h_new) * g_h * (one - g_h)
            gi_h[i] = dstate * (one - g_h) * (one - h_new * h_new)
            gi_gy[i] = dy * (x[i] - cand_y[i]) * g_y * (one - g_y)
            gi_y[i] = dy * (one - g_y) if cand_y[i] > 0 else 0.0
            d_direct[i] = dstate * g_h
            d_x[i] += dy * g_y
