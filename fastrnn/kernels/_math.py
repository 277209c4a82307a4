"""Scalar activation functions for the pointwise step kernels.

Each must stay finite and accurate for any finite argument in float32 and float64 (tests feed
|a| up to 1e4), so none of them may form ``exp`` of a large positive number and divide by it.
"""

import math

from ._jit import kernel


@kernel
def sigmoid(a):
    """Logistic function 1 / (1 + exp(-a)) without overflow for large |a|."""
    # exp only ever sees a non-positive argument, so it cannot overflow; e in (0, 1].
    e = math.exp(-abs(a))
    if a >= 0:
        return 1.0 / (1.0 + e)
    return e / (1.0 + e)


@kernel
def tanh(a):
    """Hyperbolic tangent (libm's, exact to about 1 ulp and saturating cleanly)."""
    return math.tanh(a)


@kernel
def relu(a):
    """max(a, 0)."""
    return a if a > 0 else 0.0
