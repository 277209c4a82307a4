"""GRU step (PyTorch's): blocks r, z, n; b_hn enters inside the reset product.

cache[t] holds r, z, n and hn = W_hn h_{t-1} + b_hn, which the backward step needs for dr. It is
laid out by block across the batch: ``cache[t].reshape(4 B H)`` is every row's r and z (row b's at
2 b H ... 2 b H + 2 H - 1), then every row's n, then every row's hn. So the step's activations run
as two long loops over the whole batch (sigmoid over the 2 B H of r and z, tanh over the B H of n)
instead of short loops per row: at H = 20 a row's loops of 40 and 20 left scalar remainders of 8
and 4 elements, and those scalar activations took most of the step (GRU forward at T=784, B=128).
The cheap sums around them stay per row; the arithmetic is the same, in the same order.
Measured against the row-by-row step (one run, float64 / float32): 784x128x20x20 forward+backward
82 -> 65 ms / 61 -> 49 ms; 100x32x256x256 and 100x16x64x64 within noise; with a batch of one,
where the batch-wide loops are the row's own, the extra loop and the activations' passes of their
own cost 10-25% (100x1x2x16: 53 -> 67 us). Keeping the row-by-row step for B = 1 as well cost
1.8 s more compile time per forward kernel, so it is not kept.

The hidden-side gradient differs from the input-side one in the n block (it is multiplied by r),
so the driver runs this cell with ``separate_hh``.
"""

from .._jit import inlined
from .._math import sigmoid, tanh

# The cell's layout: the one place these are defined. fastrnn.cells, the cell's kernels, the driver
# and the compiled training loop read them (the tape's array shapes: steps.tape_shapes).
GATES = 3  # gate blocks of H rows in W_ih, W_hh, b_ih, b_hh: r, z, n
STATES = ("h",)  # the parts of the recurrent state
TAPE = ("hs", "cache")  # what forward records for backward, in the kernels' argument order
CACHE = 4  # columns of the cache per step, in units of H
SEPARATE_HH = True  # the backward step writes the hidden-side gradient gh apart from gi (b_hn sits inside r * (...))
DIRECT_INPUT = False  # dx is the input GEMM alone
DIRECT_HIDDEN = True  # h' = ... + z * h: the step writes dh_direct


@inlined
def _blocks(cache, t, B, H):
    """Step t's r and z (2 B H: row b's r at 2 b H, its z right after), then n and hn (B H each:
    row b at b H)."""
    BH = B * H
    k = cache[t].reshape(4 * BH)
    return k[:2 * BH], k[2 * BH:3 * BH], k[3 * BH:]


@inlined
def forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache):
    one = hs.dtype.type(1.0)
    B, G = hp.shape
    H = G // 3
    rz_all, n_all, hn_all = _blocks(cache, t, B, H)
    bi_rz, bh_rz, bi_n, bh_n = b_ih[:2 * H], b_hh[:2 * H], b_ih[2 * H:], b_hh[2 * H:]
    for b in range(lo, hi):
        rz, x_rz, h_rz = rz_all[2 * b * H:2 * (b + 1) * H], xp[t, b, :2 * H], hp[b, :2 * H]
        for i in range(2 * H):
            rz[i] = x_rz[i] + bi_rz[i] + h_rz[i] + bh_rz[i]
    # Over views of the rows' span, from 0: a loop from 2 lo H would index with a number LLVM cannot
    # prove non-negative, and the check for a negative index left the loop scalar (3x slower).
    rz_rows = rz_all[2 * lo * H:2 * hi * H]
    for j in range(rz_rows.size):
        rz_rows[j] = sigmoid(rz_rows[j])
    for b in range(lo, hi):
        n, hn, r = n_all[b * H:(b + 1) * H], hn_all[b * H:(b + 1) * H], rz_all[2 * b * H:(2 * b + 1) * H]
        x_n, h_n = xp[t, b, 2 * H:], hp[b, 2 * H:]
        for i in range(H):
            a = h_n[i] + bh_n[i]
            hn[i] = a
            n[i] = x_n[i] + bi_n[i] + r[i] * a
    n_rows = n_all[lo * H:hi * H]
    for j in range(n_rows.size):
        n_rows[j] = tanh(n_rows[j])
    for b in range(lo, hi):
        z, n = rz_all[(2 * b + 1) * H:2 * (b + 1) * H], n_all[b * H:(b + 1) * H]
        h_prev, h_new, y = hs[t, b], hs[t + 1, b], ys[t, b]
        for i in range(H):
            h = (one - z[i]) * n[i] + z[i] * h_prev[i]
            h_new[i] = h
            y[i] = h


@inlined
def backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt):
    one = hs.dtype.type(1.0)
    H = dh.shape[1]
    B = hs.shape[1]
    rz_all, n_all, hn_all = _blocks(cache, t, B, H)
    for row in range(lo, hi):
        b = row % B
        r, z = rz_all[2 * b * H:(2 * b + 1) * H], rz_all[(2 * b + 1) * H:2 * (b + 1) * H]
        n, hn = n_all[b * H:(b + 1) * H], hn_all[b * H:(b + 1) * H]
        h_prev, d_out, d_h, d_direct = hs[t, b], dout[row], dh[row], dh_direct[row]
        gi_r, gi_z, gi_n = gi[row, :H], gi[row, H:2 * H], gi[row, 2 * H:]
        gh_r, gh_z, gh_n = gh[row, :H], gh[row, H:2 * H], gh[row, 2 * H:]
        for i in range(H):
            g = d_out[i] + d_h[i]
            da_n = g * (one - z[i]) * (one - n[i] * n[i])
            da_z = g * (h_prev[i] - n[i]) * z[i] * (one - z[i])
            da_r = da_n * hn[i] * r[i] * (one - r[i])
            gi_r[i] = da_r
            gi_z[i] = da_z
            gi_n[i] = da_n
            gh_r[i] = da_r
            gh_z[i] = da_z
            gh_n[i] = da_n * r[i]
            d_direct[i] = g * z[i]
