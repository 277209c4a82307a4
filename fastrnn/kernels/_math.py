"""Scalar activation functions for the pointwise step kernels.

libm's ``exp`` and ``tanh`` are opaque calls that LLVM cannot vectorise (this llvmlite has no
SVML), and cost ~10-20 ns per element. The versions here are plain arithmetic — range reduction,
a polynomial, a power of two built from its bits and branch-free selects — so loops over them
vectorise (~2.4 ns per element). Each stays finite for any finite argument and is within 4 ulp
of float64 (tests/test_math.py: a dense range, |a| up to 1e300, the subnormal tail of sigmoid).
Everything is computed in float64, also for float32 data: the cost is the same and float32
results are then within 1 ulp.

Each function is written twice, on purpose:

- in plain Python (``_sigmoid_python`` and so on), the readable definition, which is also what
  runs under ``NUMBA_DISABLE_JIT=1``;
- as a Numba ``@intrinsic`` that emits the same floating-point operations, in the same order,
  straight into the caller's LLVM code (:class:`_Emitter` mirrors the Python line by line).

Written as jitted functions inlined at Numba's level, every call site of an activation was
re-typed and re-lowered in every kernel, a large part of each cell's compile time; an intrinsic
costs its caller one typed call. A test checks that both forms agree bit for bit.
"""

import math

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import with_python_fallback

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two so that n * ln2 is exact (Cody-Waite)
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00

# e^r - 1 = r * P(r), P(r) = sum_{i=0}^{12} r^i / (i+1)!, the Taylor series to degree 13
# (truncation error < 1e-17 on |r| <= 0.347), as the pairs of Estrin's scheme: a dependency chain
# of 5 multiply-adds instead of Horner's 13. At H = 16 a step's whole activation is one vector's
# worth of work, so its latency, not its throughput, is the cost.
_P01 = (1.0, 1.0 / 2.0)
_P23 = (1.0 / 6.0, 1.0 / 24.0)
_P45 = (1.0 / 120.0, 1.0 / 720.0)
_P67 = (1.0 / 5040.0, 1.0 / 40320.0)
_P89 = (1.0 / 362880.0, 1.0 / 3628800.0)
_P1011 = (1.0 / 39916800.0, 1.0 / 479001600.0)
_P12 = 1.0 / 6227020800.0


# -- the definitions, in Python ---------------------------------------------------------------

def _exp_parts_python(x):
    """(s1, s2, q) with exp(x) = s1 * s2 * (1 + q) for x <= 0, where s1 * s2 = 2^n and q = e^r - 1.

    Keeping q apart gives both exp(x) = (s1 + s1*q) * s2 and expm1(x) = s*q + (s - 1) without
    cancellation. 2^n comes as two normal factors so that exp(x) can round into the subnormals
    like the true value. x is clamped at -746, below which exp(x) is zero in float64.
    """
    if math.isnan(x):  # compiled code carries NaN through r; Python's int() would raise
        return 1.0, 1.0, x
    x = -746.0 if -746.0 > x else x
    k = int(x * _INV_LN2 - 0.5)  # round(x / ln2) for x <= 0 (truncation toward zero); k in [-1076, 0]
    n = float(k)
    r = (x - n * _LN2_HI) - n * _LN2_LO  # |r| <= ln2 / 2
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p01 = _P01[0] + r * _P01[1]
    p23 = _P23[0] + r * _P23[1]
    p45 = _P45[0] + r * _P45[1]
    p67 = _P67[0] + r * _P67[1]
    p89 = _P89[0] + r * _P89[1]
    p1011 = _P1011[0] + r * _P1011[1]
    p03 = p01 + r2 * p23
    p47 = p45 + r2 * p67
    p811 = p89 + r2 * p1011
    p812 = p811 + r4 * _P12
    q = r * ((p03 + r4 * p47) + r8 * p812)
    half = k >> 1  # floor(k / 2): both halves stay >= -538, normal numbers
    return math.ldexp(1.0, half), math.ldexp(1.0, k - half), q


def _sigmoid_python(a):
    """Logistic function 1 / (1 + exp(-a)), for any finite a."""
    a = float(a)
    # exp only sees -|a| <= 0, so it cannot overflow; e in [0, 1].
    s1, s2, q = _exp_parts_python(-abs(a))
    e = (s1 + s1 * q) * s2
    d = 1.0 / (1.0 + e)
    return d if a >= 0 else e * d


def _tanh_python(a):
    """Hyperbolic tangent, for any finite a: tanh|a| = -m / (2 + m) with m = expm1(-2|a|) in (-1, 0]."""
    a = float(a)
    # Through expm1 rather than exp, 1 - e would cancel for small |a|.
    s1, s2, q = _exp_parts_python(-2.0 * abs(a))
    s = s1 * s2
    m = s * q + (s - 1.0)
    t = -m / (2.0 + m)
    return t if a >= 0 else -t


def _relu_python(a):
    """max(a, 0)."""
    a = float(a)
    return a if a > 0 else 0.0


# -- the same operations, emitted as LLVM IR ------------------------------------------------

class _Emitter:
    """Float64 arithmetic on an llvmlite builder, one method per Python operation above."""

    double = ir.DoubleType()
    i64 = ir.IntType(64)

    def __init__(self, builder):
        self.b = builder

    def const(self, value):
        return ir.Constant(self.double, value)

    def add(self, x, y):
        return self.b.fadd(x, y)

    def sub(self, x, y):
        return self.b.fsub(x, y)

    def mul(self, x, y):
        return self.b.fmul(x, y)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def neg(self, x):
        return self.b.fneg(x)

    def abs(self, x):
        fabs = self.b.module.declare_intrinsic("llvm.fabs", [self.double])
        return self.b.call(fabs, [x])

    def select_if(self, condition, x, y):
        return self.b.select(condition, x, y)

    def power_of_two(self, k):
        """2.0**k for an integer -1022 <= k <= 1023, from its bits."""
        biased = self.b.add(k, ir.Constant(self.i64, 1023))
        return self.b.bitcast(self.b.shl(biased, ir.Constant(self.i64, 52)), self.double)

    def exp_parts(self, x):
        """:func:`_exp_parts_python`."""
        c, add, mul = self.const, self.add, self.mul
        lowest = c(-746.0)
        x = self.select_if(self.b.fcmp_ordered(">", lowest, x), lowest, x)
        k = self.b.fptosi(self.sub(mul(x, c(_INV_LN2)), c(0.5)), self.i64)
        n = self.b.sitofp(k, self.double)
        r = self.sub(self.sub(x, mul(n, c(_LN2_HI))), mul(n, c(_LN2_LO)))
        r2 = mul(r, r)
        r4 = mul(r2, r2)
        r8 = mul(r4, r4)
        p01, p23, p45, p67, p89, p1011 = (add(c(p[0]), mul(r, c(p[1]))) for p in (_P01, _P23, _P45, _P67, _P89,
                                                                                  _P1011))
        p03 = add(p01, mul(r2, p23))
        p47 = add(p45, mul(r2, p67))
        p811 = add(p89, mul(r2, p1011))
        p812 = add(p811, mul(r4, c(_P12)))
        q = mul(r, add(add(p03, mul(r4, p47)), mul(r8, p812)))
        half = self.b.ashr(k, ir.Constant(self.i64, 1))
        return self.power_of_two(half), self.power_of_two(self.b.sub(k, half)), q

    def sigmoid(self, a):
        """:func:`_sigmoid_python`."""
        s1, s2, q = self.exp_parts(self.neg(self.abs(a)))
        e = self.mul(self.add(s1, self.mul(s1, q)), s2)
        d = self.div(self.const(1.0), self.add(self.const(1.0), e))
        return self.select_if(self.b.fcmp_ordered(">=", a, self.const(0.0)), d, self.mul(e, d))

    def tanh(self, a):
        """:func:`_tanh_python`."""
        s1, s2, q = self.exp_parts(self.mul(self.const(-2.0), self.abs(a)))
        s = self.mul(s1, s2)
        m = self.add(self.mul(s, q), self.sub(s, self.const(1.0)))
        t = self.div(self.neg(m), self.add(self.const(2.0), m))
        return self.select_if(self.b.fcmp_ordered(">=", a, self.const(0.0)), t, self.neg(t))

    def relu(self, a):
        """:func:`_relu_python`."""
        return self.select_if(self.b.fcmp_ordered(">", a, self.const(0.0)), a, self.const(0.0))


def _activation(name):
    """An intrinsic ``f(a) -> float64`` for a float argument, emitting :class:`_Emitter`'s ``name``."""
    def typer(typingctx, a):
        if not isinstance(a, types.Float):
            return None

        def codegen(context, builder, signature, args):
            value = context.cast(builder, args[0], signature.args[0], types.float64)
            return getattr(_Emitter(builder), name)(value)

        return types.float64(a), codegen

    typer.__name__ = name
    return typer


sigmoid = with_python_fallback(_sigmoid_python)(intrinsic(_activation("sigmoid")))
tanh = with_python_fallback(_tanh_python)(intrinsic(_activation("tanh")))
relu = with_python_fallback(_relu_python)(intrinsic(_activation("relu")))
