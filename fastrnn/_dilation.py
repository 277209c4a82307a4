"""One dilated layer over interleaved chains: how a cell with dilation d runs in a
:class:`fastrnn.DilatedRNN` on the numba backend.

A layer with dilation d runs its cell over d independent chains, the steps t with the same
t mod d. T = q*d + r steps are split into the r chains of q+1 steps and the d-r chains of q
steps, and each group is one call of the cell's kernels over a batch d (or d-r) times larger.
"""

import numpy as np

from .layer import tree_map


def gather(a, d, space, name):
    """(T, B, F) -> the steps of chains 0..r-1, (q+1, r*B, F), and of chains r..d-1, (q, (d-r)*B, F).

    Row j*B + b of a group's step i is batch entry b of chain (first chain of the group + j).
    Either group may be empty (None). The second is a view of ``a``; the first, a copy unless
    d divides T, is taken from the workspace ``space`` under ``name``.
    """
    T, B, F = a.shape
    q, r = divmod(T, d)
    body = a[:q * d].reshape(q, d, B, F)
    first = None
    if r:
        first = space.empty(name, (q + 1, r, B, F), a.dtype)
        first[:q] = body[:, :r]
        first[q] = a[q * d:]
        first = first.reshape(q + 1, r * B, F)
    rest = body[:, r:].reshape(q, (d - r) * B, F) if q else None
    return first, rest


def scatter(first, rest, T, d, B, dtype, space, name):
    """Inverse of :func:`gather`: a view of ``rest`` when d divides T, else an array of the
    workspace ``space``."""
    F = (first if first is not None else rest).shape[2]
    if first is None:
        return rest.reshape(T, B, F)  # step i of chain j is step i*d + j: rest's own order
    out = space.empty(name, (T, B, F), dtype)
    q, r = divmod(T, d)
    body = out[:q * d].reshape(q, d, B, F)
    if r:
        steps = first.reshape(q + 1, r, B, F)
        body[:, :r] = steps[:q]
        out[q * d:] = steps[q]
    if q:
        body[:, r:] = rest.reshape(q, d - r, B, F)
    return out


def _rows(leaf, lo, hi):
    """Entries lo..hi-1 of a (d, B, F) state leaf as one ((hi-lo)*B, F) batch."""
    return leaf[lo:hi].reshape(-1, leaf.shape[2])


class _LayerTape:
    __slots__ = ("first", "rest", "T", "B")

    def __init__(self, first, rest, T, B):
        self.first, self.rest, self.T, self.B = first, rest, T, B


def forward(cell, d, x, state):
    """Run ``cell`` with dilation ``d`` over a checked ``x (T, B, I)`` from a checked ``state``
    whose leaves are (d, B, F), oldest first. Returns ``y``, the new state and a tape."""
    T, B, _ = x.shape
    q, r = divmod(T, d)
    space = cell._workspace
    x_first, x_rest = gather(x, d, space, "dilated x")
    ys, finals, tapes = [None, None], [None, None], [None, None]
    # Chains 0..r-1 start from entries 0..r-1 of the state and end at the last r steps;
    # chains r..d-1 start from entries r..d-1 and end at steps T-d ... T-r-1 (or, with q = 0,
    # run no step at all and keep their state).
    if r:
        ys[0], finals[0], tapes[0] = cell.forward(x_first, tree_map(lambda s: _rows(s, 0, r), state))
    rest_state = tree_map(lambda s: _rows(s, r, d), state)
    if q:
        ys[1], finals[1], tapes[1] = cell.forward(x_rest, rest_state)
    else:
        finals[1] = rest_state
    y = scatter(ys[0], ys[1], T, d, B, cell.dtype, space, "dilated y")
    # New state entry i is h_{T-d+i}: the chains r..d-1 end first, then 0..r-1.
    parts = [f for f in (finals[1], finals[0]) if f is not None]
    new_state = tree_map(lambda *fs: np.concatenate([f.reshape(-1, B, f.shape[1]) for f in fs]), *parts)
    return y, new_state, _LayerTape(tapes[0], tapes[1], T, B)


def backward(cell, d, tape, dy, dstate, truncate):
    """Backward of :func:`forward`; ``truncate`` counts the chain's own transitions."""
    T, B = tape.T, tape.B
    q, r = divmod(T, d)
    space = cell._workspace
    dy_first, dy_rest = gather(dy, d, space, "dilated dy")
    grads, dxs, dstarts = [], [None, None], [None, None]
    if r:
        g, dxs[0], dstarts[0] = cell.backward(tape.first, dy_first, tree_map(lambda s: _rows(s, d - r, d), dstate),
                                              truncate)
        grads.append(g)
    rest_dstate = tree_map(lambda s: _rows(s, 0, d - r), dstate)
    if q:
        g, dxs[1], dstarts[1] = cell.backward(tape.rest, dy_rest, rest_dstate, truncate)
        grads.append(g)
    else:
        dstarts[1] = rest_dstate  # chains that ran no step pass their gradient straight through
    total = {name: sum(g[name] for g in grads) for name in grads[0]}
    dx = scatter(dxs[0], dxs[1], T, d, B, cell.dtype, space, "dilated dx")
    parts = [s for s in dstarts if s is not None]
    dstart = tree_map(lambda *ss: np.concatenate([s.reshape(-1, B, s.shape[1]) for s in ss]), *parts)
    return total, dx, dstart
