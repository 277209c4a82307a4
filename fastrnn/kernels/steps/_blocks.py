"""Loops shared by the gated cells' steps.

A step is written as several short loops over few arrays each rather than one loop doing
everything: LLVM vectorises a loop only when it can rule out, at run time, overlap among the
arrays the loop touches, and it gives up when there are too many of them (a GRU step fused into
one loop ran 5x slower at B=16, H=64). The loops run over one-dimensional views taken per batch
row (``cache[t, b, lo:hi]``), one per operand: a loop that reads and writes the same 3-d array
at two offsets (GRU's n gate reading r from the same cache row) stayed scalar, 6x slower.
"""

from .._jit import inlined
from .._math import relu, sigmoid, tanh

# The activation of a block (``kind``), a set of codes of its own: the RNN's ``nonlinearity``
# codes (steps.rnn's TANH, RELU, SIGMOID) are public kernel arguments and number them otherwise.
ACT_SIGMOID, ACT_TANH, ACT_RELU = 0, 1, 2


@inlined
def activate(kind, t, b, lo, hi, xp, b_ih, hp, b_hh, cache):
    """cache[t, b, j] = f(xp[t, b, j] + b_ih[j] + hp[b, j] + b_hh[j]) for lo <= j < hi; f by ``kind``."""
    # One-dimensional views, one per operand: indexing the 3-d arrays directly left this loop
    # scalar inside the driver (LLVM did not vectorise it; 4x slower at B=32, H=64).
    out, x, h, bi, bh = cache[t, b, lo:hi], xp[t, b, lo:hi], hp[b, lo:hi], b_ih[lo:hi], b_hh[lo:hi]
    if kind == ACT_SIGMOID:
        for j in range(hi - lo):
            out[j] = sigmoid(x[j] + bi[j] + h[j] + bh[j])
    elif kind == ACT_TANH:
        for j in range(hi - lo):
            out[j] = tanh(x[j] + bi[j] + h[j] + bh[j])
    else:
        for j in range(hi - lo):
            out[j] = relu(x[j] + bi[j] + h[j] + bh[j])
