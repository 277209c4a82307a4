"""Loops shared by the gated cells' steps.

A step is written as several short loops over few arrays each rather than one loop doing
everything: LLVM vectorises a loop only when it can rule out, at run time, overlap among the
arrays the loop touches, and it gives up when there are too many of them (a GRU step fused into
one loop ran 5x slower at B=16, H=64).
"""

from .._jit import inlined
from .._math import relu, sigmoid, tanh

SIGMOID, TANH, RELU = 0, 1, 2


@inlined
def activate(kind, t, b, lo, hi, xp, b_ih, hp, b_hh, cache):
    """cache[t, b, j] = f(xp[t, b, j] + b_ih[j] + hp[b, j] + b_hh[j]) for lo <= j < hi; f by ``kind``."""
    if kind == SIGMOID:
        for j in range(lo, hi):
            cache[t, b, j] = sigmoid(xp[t, b, j] + b_ih[j] + hp[b, j] + b_hh[j])
    elif kind == TANH:
        for j in range(lo, hi):
            cache[t, b, j] = tanh(xp[t, b, j] + b_ih[j] + hp[b, j] + b_hh[j])
    else:
        for j in range(lo, hi):
            cache[t, b, j] = relu(xp[t, b, j] + b_ih[j] + hp[b, j] + b_hh[j])
