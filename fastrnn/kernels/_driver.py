"""The recurrence driver shared by every cell.

It owns the time loop, the truncation rule and the big matrix products; a cell contributes only
its pointwise step math, two jitted functions in :mod:`fastrnn.kernels.steps`.

The two recurrences (:func:`recur_forward`, :func:`recur_backward`) are inlined into each cell's
kernels. Each cell gets its own copy of them (:func:`recurrences`), whose step calls are that
cell's step functions; the cell also passes its id, a constant, for its layout flags. Three
choices there come from the compile profile:

- the step is a global of the cell's copy, not chosen by an if/elif over the ids, which had
  Numba inline, type and lower all five cells' steps before dropping four, nor by an overload
  typed for the literal id, which Numba compiled in full once merely to type it and then
  inlined anyway (0.4-0.8 s of a cell's cold compile);
- the recurrences are inlined rather than compiled as functions of their own: when a compiled
  function still linked its callees' code and re-optimised it, one level less halved the LLVM
  time of a cell. Kernels are now called by symbol (:mod:`fastrnn.kernels._jit`), so that reason
  is gone, but the recurrences as kernels of their own, made to type the cell id as a literal
  (``numba.literally``), compiled slower still (cold RNN 16-22 s against 13-20 s inlined, in
  interleaved runs), so they stay inlined;
- the products, and the flush of a block of gradients into the weight gradients, stay
  functions of their own, compiled once per dtype and cached for every cell: inlining them cost
  more in Numba's inliner than it saved. They are called by symbol, except the two products
  called at every step (:func:`mm_ab`, :func:`mm_abt`), which stay linked, open to LLVM's
  inlining.

Passing the step functions themselves as arguments would be simpler to read, but a dispatcher
passed as a value is lowered to a raw object address once Numba's first-class function support
is loaded, and such code cannot be written to the on-disk cache.

Array conventions (all C-contiguous, one dtype):

- ``xt (T, B, I)``: the recurrence's input; ``hs (T+1, B, H)``: hidden states, ``hs[0]`` the
  initial one; ``cs (T+1, B, C)``: a second state (LSTM's cell state; C = 0 for other cells);
  ``cache (T, B, K)``: whatever else the cell's backward step needs (gate values);
  ``ys (T, B, H)``: per-step outputs.
- ``w_ih (G, I)``, ``w_hh (G, H)``, ``b_ih (G)``, ``b_hh (G)``, G = number of gate blocks * H.

Step functions (``option`` is a cell-specific integer such as the RNN's nonlinearity). They get
whole arrays and the time index rather than per-step slices: a slice costs a reference-count
round trip, and a dozen of them per step dominated small problems.

``forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache)``
    Step t for batch entries lo..hi-1. ``xp[t] = x_t W_ih^T`` (xp is (T, B, G)) and
    ``hp = h_{t-1} W_hh^T`` (B, G) come without biases, so the cell decides where each bias enters
    (GRU's ``b_hn`` sits inside the reset product). Reads ``hs[t]``, ``cs[t]``; writes ``hs[t+1]``,
    ``cs[t+1]``, ``ys[t]`` and ``cache[t]``, all in those entries' rows only (the threaded kernels
    run several row ranges at once).

``backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt)``
    Backward through step t for rows lo..hi-1 of R = slots * B rows; row r belongs to batch entry
    r % B.
    ``dout`` (R, H) is the gradient at the step's output y, ``dh``/``dc`` at its new state.
    Writes the gradients at the input-side pre-activations ``gi`` (R, G), at the hidden-side
    ones ``gh`` (only when the cell sets ``separate_hh``; otherwise ``gh`` is ``gi``), the part
    of the gradient at ``h_{t-1}`` that does not pass through ``W_hh`` (``dh_direct``, e.g. GRU's
    ``z * dh``; only a cell listed in ``steps.DIRECT_HIDDEN`` writes it, for the others the
    ``W_hh`` product is the whole gradient), the gradient at ``c_{t-1}``, and *adds* any direct
    gradient at x_t into ``dxt[t]`` (only a cell listed in ``steps.DIRECT_INPUT`` may: for the
    others ``dxt`` is left unset until the input GEMM writes it). It must be linear in (dout, dh, dc), as every
    backward pass is.
"""

import numba
import numpy as np

from . import steps
from ._gemm import MR, OVERWRITE, VECTOR_BYTES, gemm, pack, packed, packed_shape, splits_itself, threads
from ._jit import inlined, inlined_twin, kernel, linked, reassociating

# Small products are written as loops rather than sent through the tiled product of
# :mod:`fastrnn.kernels._gemm`, whose fixed cost (packing, edge tiles) dominates there: below
# SMALL_GEMM multiply-adds, and only when the innermost loop runs over at least MIN_VECTOR
# contiguous elements, since LLVM vectorises that loop and nothing else (with n = 2 a loop took
# twice as long as a BLAS call).
SMALL_GEMM = 512
MIN_VECTOR = 8
# The tiled products read a B with contiguous rows of at most this many vectors in place, with
# one-vector tiles, rather than packing it first: packing such a B cost as much as the product
# (float64, 128x16 by 128x16: 2.2 µs packed, 0.95 µs in place; 128x64 by 128x16: 5.1 against
# 4.1), while for wider ones the three-vector tiles on a packed B won (128x60 by 128x20: 5.3
# packed, 6.6 in place; 512x256 by 512x64: 166 against 200).
IN_PLACE_VECTORS = 2

# The backward pass keeps the gradients at the pre-activations for blocks of about this many rows
# (steps times batch) and takes each block into the weight gradients with one GEMM. Enough rows
# for the GEMMs to run near full speed, few enough for the block to stay in cache: kept for the
# whole sequence, they went out to memory and back (GRU backward at T=100, B=32, I=H=256: 130 ms
# that way, 112 ms in blocks; 256 and 1024 rows measured within noise of 512).
BLOCK_ROWS = 512


@inlined
def copy_into(src, dst):
    """dst[...] = src for two 2-d arrays of one shape, as loops: an array-to-array slice
    assignment compiles Numba's formatted shape-mismatch error (string joins and reprs), which
    cost every kernel that used one seconds of compile time."""
    for r in range(src.shape[0]):
        for i in range(src.shape[1]):
            dst[r, i] = src[r, i]


@inlined
def _small(m, k, n, inner):
    """Whether an (m, k) x (k, n) product runs as loops whose innermost one has ``inner`` elements."""
    return m * n * k <= SMALL_GEMM and inner >= MIN_VECTOR


@inlined
def _in_place(b):
    """Whether the tiled products read ``b (k, n)`` as it is rather than packed: its rows
    contiguous and at most IN_PLACE_VECTORS vectors long."""
    return b.strides[1] == b.itemsize and b.shape[1] * b.itemsize <= IN_PLACE_VECTORS * VECTOR_BYTES


@kernel
def prepare(m, b):
    """What the products below need of ``b (k, n)`` for at most ``m`` rows of ``a``: its packed
    form when such a product goes to :func:`gemm`, else an empty array (loops, or
    :func:`gemm`, read ``b`` itself). Called once per kernel call for a weight matrix that
    every step multiplies by."""
    k, n = b.shape
    if (_small(m, k, n, n) and _small(m, k, n, k)) or _in_place(b):
        return np.empty((0, 0, 0), b.dtype)
    return packed(b)


# The three products as plain loops, for the small cases below and for callers whose shapes are
# known to suit loops (the training loop's narrow head). Inlined, they take their caller's
# compile flags: ab_loops and atb_loops vectorise as they are, abt_loops needs reassociation.

@inlined
def ab_loops(a, b, out, accumulate):
    """out = a @ b (or +=): row updates out[i, :] += a[i, p] * b[p, :], whose loop over j vectorises."""
    for i in range(a.shape[0]):
        if not accumulate:
            for j in range(b.shape[1]):
                out[i, j] = 0.0
        for p in range(a.shape[1]):
            aip = a[i, p]
            for j in range(b.shape[1]):
                out[i, j] += aip * b[p, j]


@inlined
def abt_loops(a, b, out):
    """out = a @ b.T as dot products over the rows of b (vectorised only under reassociation)."""
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            s = 0.0
            for p in range(a.shape[1]):
                s += a[i, p] * b[j, p]
            out[i, j] = s


@inlined
def atb_loops(a, b, out, accumulate):
    """out = a.T @ b (or +=): out[p, :] += a[i, p] * b[i, :] over the rows i."""
    if not accumulate:
        out[...] = 0.0
    for i in range(a.shape[0]):
        for p in range(a.shape[1]):
            aip = a[i, p]
            for j in range(b.shape[1]):
                out[p, j] += aip * b[i, j]


@kernel
@linked
def mm_ab(a, b, bp, out, accumulate, allowed):
    """out = a @ b (or out += a @ b with ``accumulate``) for a (m, k), b (k, n);
    ``bp = prepare(m, b)`` (or for more rows); on at most ``allowed`` threads (see :func:`gemm`)."""
    m, k = a.shape
    n = b.shape[1]
    if not _small(m, k, n, n):
        if bp.shape[0] == 0 and not _in_place(b):  # prepared for fewer rows than this call has
            bp = packed(b)
        gemm(a, b, bp, out, accumulate, allowed)
        return
    ab_loops(a, b, out, accumulate)


@reassociating
@linked
def mm_abt(a, b, bp, out, allowed):
    """out = a @ b.T for a (m, k), b (n, k); ``bp = prepare(m, b.T)`` (or for more rows); on at
    most ``allowed`` threads.

    Small products run as dot products over the rows of b (vectorised thanks to the reassoc flag
    of @reassociating).
    """
    m, k = a.shape
    n = b.shape[0]
    if not _small(m, k, n, k):
        if bp.shape[0] == 0 and not _in_place(b.T):  # prepared for fewer rows than this call has
            bp = packed(b.T)
        gemm(a, b.T, bp, out, OVERWRITE, allowed)
        return
    abt_loops(a, b, out)


@kernel
def mm_atb(a, b, scratch, out, accumulate):
    """out = a.T @ b (or out += a.T @ b with ``accumulate``) for a (m, k), b (m, n).

    ``scratch`` is a 1-d array with room for b packed (the product of ``packed_shape(m, n, b)``):
    b changes from call to call, so it is packed here (or read in place: see IN_PLACE_VECTORS).
    """
    mm_atb_on(a, b, scratch, out, accumulate, threads())


@kernel
def mm_atb_on(a, b, scratch, out, accumulate, allowed):
    """:func:`mm_atb` on at most ``allowed`` threads."""
    m, k = a.shape
    n = b.shape[1]
    if not _small(k, m, n, n):
        bp = scratch[:0].reshape((0, 0, 0))
        if not _in_place(b):
            panels, rows, width = packed_shape(m, n, b)
            bp = scratch[:panels * rows * width].reshape((panels, rows, width))
            pack(b, bp)
        gemm(a.T, b, bp, out, accumulate, allowed)
        return
    atb_loops(a, b, out, accumulate)


# The threaded kernels (``split`` true) also share each step out over threads, by batch rows: each
# thread takes its rows' part of the hidden-side product and of the pointwise step, one parallel
# loop per step. A row's numbers are the same whoever computes them, so the results are the same
# bits as on one thread. A step is split from STEP_WORK multiply-adds of that product times the
# element size (counted as for a product, _gemm.PARALLEL_WORK), into chunks of at least MR rows;
# fastrnn.cells applies the same rule when it chooses a threaded kernel. The threshold is a choice,
# not a tuned figure: on 2 cores (Xeon, OpenMP layer) every size above it that was measured ran
# faster on two threads (at 100x16x64x64 those above it: 1.16-1.44x; README's table).
STEP_WORK = 1 << 20


@inlined
def step_chunks(split, rows, work):
    """Into how many chunks of batch rows a step of ``work`` (multiply-adds times bytes) over ``rows``
    rows is shared out: 1 unless ``split`` and the step is big enough for the threads allowed."""
    if not split or work < STEP_WORK:
        return 1
    return max(1, min(threads(), rows // MR))


@inlined
def _rows(chunk, chunks, rows):
    """Rows lo..hi-1 of chunk ``chunk`` of ``chunks`` near-equal ones."""
    if chunks == 1:  # every call on one thread: no divisions in its time loop
        return 0, rows
    return chunk * rows // chunks, (chunk + 1) * rows // chunks


def recurrences(cell):
    """``(recur_forward, recur_backward)`` for cell ``cell``: copies of the two below whose
    ``step_forward``/``step_backward`` are that cell's steps (from :mod:`fastrnn.kernels.steps`),
    built by :func:`fastrnn.kernels._jit.inlined_twin` and inlined into its kernels (each cell's
    kernel module asks once, at import)."""
    changed = {"step_forward": steps.FORWARD_STEPS[cell], "step_backward": steps.BACKWARD_STEPS[cell]}
    return tuple(inlined_twin(template, f"cell{cell}", changed) for template in (recur_forward, recur_backward))


# The templates' step functions: a cell's copy has its own in their place.
step_forward = step_backward = None


def recur_forward(cell, option, split, xt, h0, c0, w_ih, w_hh, b_ih, b_hh, hs, cs, ys, cache):
    """Run cell ``cell``'s step over all T steps, filling ``hs``, ``cs``, ``ys`` and ``cache`` in place.

    A template: :func:`recurrences` gives each cell its copy, whose ``step_forward`` is the cell's.

    ``split`` (a compile-time constant) is true in the threaded kernels, compiled with Numba's
    parallel loops: there each step's rows are shared out over the threads allowed.
    """
    T, B, I = xt.shape
    H = hs.shape[2]
    C = cs.shape[2]
    G = w_ih.shape[0]
    # The input projections of a block of `span` steps (about BLOCK_ROWS rows) in one GEMM,
    # rather than T small ones, and rather than all T at once: a (T, B, G) array of them went out
    # to memory and back, on fresh pages at every call (GRU at T=784, B=128, H=20: 24 MB).
    span = min(T, max(1, BLOCK_ROWS // B))
    xp = np.empty((span, B, G), dtype=xt.dtype)
    x_rows = xt.reshape(T * B, I)
    xp_rows = xp.reshape(span * B, G)
    w_ih_packed = prepare(span * B, w_ih.T)
    # Packed once, multiplied by at every step.
    w_hh_packed = prepare(B, w_hh.T)
    hp = np.empty((B, G), dtype=xt.dtype)
    chunks = step_chunks(split, B, B * G * H * xt.itemsize)
    # One chunk: the product may split itself; several: each runs on one thread already.
    allowed = threads() if chunks == 1 else 1
    for b in range(B):
        for i in range(H):
            hs[0, b, i] = h0[b, i]
        for i in range(C):
            cs[0, b, i] = c0[b, i]
    for first in range(0, T, span):
        n = min(span, T - first)
        if chunks == 1 or splits_itself(n * B, G, I, xt.itemsize):
            mm_abt(x_rows[first * B:(first + n) * B], w_ih, w_ih_packed, xp_rows[:n * B], threads())
        else:
            # Split by rows here: a block's projection is mostly too small to split itself, and
            # ran on one thread between the steps.
            for part in numba.prange(chunks):
                r_lo, r_hi = _rows(part, chunks, n * B)
                mm_abt(x_rows[first * B + r_lo:first * B + r_hi], w_ih, w_ih_packed, xp_rows[r_lo:r_hi], 1)
        # The step reads xp[t] and the other arrays at t: views starting at the block's first
        # step keep its contract (one index for all).
        xb, hb, cb, yb, kb = xt[first:], hs[first:], cs[first:], ys[first:], cache[first:]
        for t in range(n):
            for chunk in numba.prange(chunks):
                lo, hi = _rows(chunk, chunks, B)
                mm_abt(hb[t, lo:hi], w_hh, w_hh_packed, hp[lo:hi], allowed)
                step_forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xb, hb, cb, yb, kb)


@inlined
def _sum_slots(rows, B, out, row0, lo, hi):
    """out[row0 + b] = sum over slots j of rows[j*B + b], for rows (slots*B, n) and lo <= b < hi."""
    n = rows.shape[1]
    slots = rows.shape[0] // B
    for b in range(lo, hi):
        for i in range(n):
            out[row0 + b, i] = rows[b, i]
    for j in range(1, slots):
        for b in range(lo, hi):
            for i in range(n):
                out[row0 + b, i] += rows[j * B + b, i]


def recur_backward(cell, option, separate_hh, split, xt, w_ih, w_hh, hs, cs, cache, dy, dh_n, dc_n, truncate,
                   dw_ih, dw_hh, db_ih, db_hh, dxt, dh0, dc0):
    """Backpropagate through the recurrence with the per-output truncation horizon (a template, as
    :func:`recur_forward`).

    ``truncate < 0`` means full BPTT. Otherwise the gradient of output t flows through steps
    max(0, t-k) ... t only (and into the initial state when t - k <= 0); ``dh_n``/``dc_n`` count
    as one more output of step T-1.

    The backward pass is linear in its incoming gradients, so the gradients that started at
    different outputs can be carried separately: slot j of a ring of k+1 slots holds the
    gradient that started at output t with t mod (k+1) == j. When output s enters at step s, its
    slot's previous occupant (output s+k+1) has used up its k transitions and is dropped. All
    slots go through ``W_hh`` in one GEMM per step with (k+1)*B rows. Full BPTT (and any k >= T-1,
    which by definition equals it) needs a single slot.

    With ``split`` (the threaded kernels) a step's batch entries are shared out over threads, each
    thread taking its entries' rows in every slot, in slot order as on one thread; a block's
    weight- and input-gradient products too small to split themselves run side by side
    (:func:`_flush_part`).

    Writes ``dw_ih, dw_hh, db_ih, db_hh, dxt (T, B, I), dh0 (B, H), dc0 (B, C)``, given by the caller.
    """
    T, B, I = xt.shape
    H = hs.shape[2]
    C = cs.shape[2]
    G = w_ih.shape[0]
    dtype = xt.dtype
    full = truncate < 0 or truncate >= T - 1
    slots = 1 if full else truncate + 1
    R = slots * B

    carry_h = np.zeros((R, H), dtype)
    carry_c = np.zeros((R, C), dtype)
    dout = np.zeros((R, H), dtype)
    dc_prev = np.empty((R, C), dtype)
    # The W_hh path's product lands in hprop, to be added to the direct path; without one, straight
    # in carry_h (the step has read it by then): a pass over the rows and a zeroing less, a step.
    direct_hidden = cell in steps.DIRECT_HIDDEN
    dh_direct = np.empty((R if direct_hidden else 0, H), dtype)
    hprop = np.empty((R, H), dtype) if direct_hidden else carry_h
    # With one slot these become views of the block's rows at each step (below).
    slot_gi = np.empty((0 if full else R, G), dtype)
    slot_gh = np.empty((0 if full else R, G), dtype) if separate_hh else slot_gi
    # The gradients at the pre-activations are kept for one block of `span` steps at a time, rows
    # p*B ... p*B + B-1 for the block's p-th step, and leave through the weight-gradient and
    # input-gradient GEMMs when the block is done (see BLOCK_ROWS).
    span = min(T, max(1, BLOCK_ROWS // B))
    work = np.empty((2 if separate_hh else 1, span * B, G), dtype)
    dgi = work[0]
    dgh = work[1] if separate_hh else dgi
    w_hh_packed = prepare(R, w_hh)
    w_ih_packed = prepare(span * B, w_ih)
    # Room for one block's rows of x or h, packed for the weight-gradient GEMMs.
    panels, rows, width = packed_shape(span * B, max(I, H), xt)
    room = panels * rows * width
    # The threaded kernels need two rooms: their two weight-gradient products may run side by side
    # (_flush_part).
    scratch = np.empty((2 if split else 1) * room, dtype)
    x_rows = xt.reshape(T * B, I)
    h_rows = hs[:T].reshape(T * B, H)
    dx_rows = dxt.reshape(T * B, I)
    direct_input = cell in steps.DIRECT_INPUT
    if direct_input:
        dxt[...] = 0.0
    db_ih[...] = 0.0
    db_hh[...] = 0.0
    chunks = step_chunks(split, B, R * G * H * xt.itemsize)
    allowed = threads() if chunks == 1 else 1
    bias_chunks = 1 if chunks == 1 else max(1, min(chunks, G // MR))

    previous = -1
    for s in range(T - 1, -1, -1):
        j = 0 if full else s % slots
        lo = j * B
        first = s - s % span  # the block's first step, which is processed last
        row = (s - first) * B
        if full:
            # One slot: the step writes its gradients straight into the block's rows, so there is
            # nothing to sum and no copy (GRU at T=784, B=128, H=20: two (B, 3H) copies a step).
            slot_gi = dgi[row:row + B]
            slot_gh = dgh[row:row + B]
        for chunk in numba.prange(chunks):
            b_lo, b_hi = _rows(chunk, chunks, B)
            for b in range(b_lo, b_hi):
                if not full:
                    # Output s takes over the slot of output s+k+1, whose horizon ends here.
                    for i in range(H):
                        carry_h[lo + b, i] = 0.0
                    for i in range(C):
                        carry_c[lo + b, i] = 0.0
                    if previous >= 0:
                        for i in range(H):
                            dout[previous * B + b, i] = 0.0
                for i in range(H):
                    dout[lo + b, i] = dy[s, b, i]
                if s == T - 1:
                    for i in range(H):
                        carry_h[lo + b, i] += dh_n[b, i]
                    for i in range(C):
                        carry_c[lo + b, i] += dc_n[b, i]
            for slot in range(slots):
                step_backward(option, s, slot * B + b_lo, slot * B + b_hi, xt, hs, cs, cache, dout, carry_h, carry_c,
                              slot_gi, slot_gh, dh_direct, dc_prev, dxt)
            if not full:
                _sum_slots(slot_gi, B, dgi, row, b_lo, b_hi)
                if separate_hh:
                    _sum_slots(slot_gh, B, dgh, row, b_lo, b_hi)
            # Every slot's gradient at h_{s-1}: the W_hh path in one GEMM, plus the direct path
            # (with chunks, one GEMM a slot: a chunk's rows are not contiguous across slots).
            if chunks == 1:
                mm_ab(slot_gh, w_hh, w_hh_packed, hprop, OVERWRITE, allowed)
            else:
                for slot in range(slots):
                    r_lo, r_hi = slot * B + b_lo, slot * B + b_hi
                    mm_ab(slot_gh[r_lo:r_hi], w_hh, w_hh_packed, hprop[r_lo:r_hi], OVERWRITE, allowed)
            for slot in range(slots):
                for r in range(slot * B + b_lo, slot * B + b_hi):
                    if direct_hidden:
                        for i in range(H):
                            carry_h[r, i] = hprop[r, i] + dh_direct[r, i]
                    for i in range(C):
                        carry_c[r, i] = dc_prev[r, i]
        previous = j
        if s == first:
            end = min(T, s + span) * B  # the block's rows are s*B ... end-1
            n = end - s * B
            if chunks == 1 or splits_itself(n, G, max(I, H), xt.itemsize):  # the largest splits itself
                _flush_block(dgi[:n], dgh[:n], x_rows[s * B:end], h_rows[s * B:end], w_ih, w_ih_packed,
                             end == T * B, scratch[:room], dw_ih, dw_hh, dx_rows[s * B:end], direct_input)
            else:
                # The block's products side by side, each on one thread: too small to split
                # themselves, each would run on one thread alone (GRU at H = 20: the whole flush),
                # and none sums across threads, so the results are those of the one-thread kernel.
                for part in numba.prange(FLUSH_PARTS):
                    _flush_part(part, dgi[:n], dgh[:n], x_rows[s * B:end], h_rows[s * B:end], w_ih, w_ih_packed,
                                end == T * B, scratch, room, dw_ih, dw_hh, dx_rows[s * B:end], direct_input)
            # The bias gradients, sums over the block's rows: shared out by columns, each summed in
            # row order as on one thread.
            for chunk in numba.prange(bias_chunks):
                g_lo, g_hi = _rows(chunk, bias_chunks, G)
                _column_sums(dgi[:n], db_ih, g_lo, g_hi)
                _column_sums(dgh[:n], db_hh, g_lo, g_hi)

    # After step 0 every live slot holds a gradient at the initial state (outputs t <= k).
    _sum_slots(carry_h, B, dh0, 0, 0, B)
    _sum_slots(carry_c, B, dc0, 0, 0, B)


@inlined
def _column_sums(rows, out, lo, hi):
    """out[i] += sum of rows[:, i] for lo <= i < hi, adding the rows in order."""
    cols = out[lo:hi]  # from 0: see the GRU step on loops from an offset
    for r in range(rows.shape[0]):
        row = rows[r, lo:hi]
        for i in range(hi - lo):
            cols[i] += row[i]


# The flush's parts on threads, in an order that gives two threads equal shares (a static schedule
# hands each thread a run of consecutive parts): dW_ih with the first half of dx's rows, dW_hh
# with the second.
FLUSH_PARTS = 4


@kernel
def _flush_part(part, dgi, dgh, x_rows, h_rows, w_ih, w_ih_packed, overwrite, scratch, room, dw_ih, dw_hh, dx_rows,
                direct_input):
    """Part ``part`` of :func:`_flush_block`, on one thread: 0 dW_ih, 2 dW_hh (each packing into
    its own room of ``scratch``), 1 and 3 the two halves of dx's rows."""
    if part == 0:
        mm_atb_on(dgi, x_rows, scratch[:room], dw_ih, not overwrite, 1)
    elif part == 2:
        mm_atb_on(dgh, h_rows, scratch[room:], dw_hh, not overwrite, 1)
    else:
        rows = dgi.shape[0]
        lo, hi = (0, rows // 2) if part == 1 else (rows // 2, rows)
        mm_ab(dgi[lo:hi], w_ih, w_ih_packed, dx_rows[lo:hi], direct_input, 1)


@kernel
def _flush_block(dgi, dgh, x_rows, h_rows, w_ih, w_ih_packed, overwrite, scratch, dw_ih, dw_hh, dx_rows,
                 direct_input):
    """Take one block's pre-activation gradients (rows of ``dgi``/``dgh``) into the weight and
    input gradients: GEMMs over the block's rows. The weight gradients of the first block done
    (the one holding step T-1) are written (``overwrite``), the later ones added to them."""
    mm_atb(dgi, x_rows, scratch, dw_ih, not overwrite)
    mm_atb(dgh, h_rows, scratch, dw_hh, not overwrite)
    # A cell with a direct path to x has already added it into dx.
    mm_ab(dgi, w_ih, w_ih_packed, dx_rows, direct_input, threads())
