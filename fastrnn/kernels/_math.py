"""Scalar activation functions for the pointwise step kernels.

libm's ``exp`` and ``tanh`` are opaque calls that LLVM cannot vectorise (this llvmlite has no
SVML), and cost ~10-20 ns per element. The versions here are plain arithmetic — range reduction,
a polynomial, a power of two built from its bits and branch-free selects — so loops over them
vectorise. Each stays finite for any finite argument and is within a few ulp of its dtype
(tests/test_math.py: a dense range, |a| up to the largest finite values, the subnormal tail of
sigmoid).

Each is computed in the dtype of its argument, with a polynomial sized for that dtype: degree 13
in float64, degree 7 in float32. A float32 loop then fills a vector with 16 elements instead of
8 and needs no conversions: 0.5 against 1.6 ns per element for a sigmoid over float32 (Zen 4).
Until this was split, float32 data went through the float64 functions, which cost the pointwise
steps of the float32 kernels about as much as the float64 ones.

Each function is written twice, on purpose:

- in plain Python (``_sigmoid_python`` and so on), the readable definition, which is also what
  runs under ``NUMBA_DISABLE_JIT=1``; its float32 form is the same lines on NumPy float32
  scalars, whose every operation rounds to float32 as the compiled code does;
- as a Numba ``@intrinsic`` that emits the same floating-point operations, in the same order,
  straight into the caller's LLVM code (:class:`_Emitter` mirrors the Python line by line).

Written as jitted functions inlined at Numba's level, every call site of an activation was
re-typed and re-lowered in every kernel, a large part of each cell's compile time; an intrinsic
costs its caller one typed call. tests/test_math.py checks that both forms agree bit for bit.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import with_python_fallback


class _Float64:
    """The float64 constants. exp(x) for x <= 0 is computed as 2^n e^r, |r| <= ln2 / 2."""

    of = float  # a Python float is a float64
    LOWEST = -746.0  # exp(x) rounds to zero below it
    LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two so that n * ln2 is exact (Cody-Waite)
    LN2_LO = 1.90821492927058770002e-10
    INV_LN2 = 1.44269504088896338700e+00
    # e^r - 1 = r * P(r), P(r) = sum_{i=0}^{12} r^i / (i+1)!, the Taylor series to degree 13
    # (truncation error < 1e-17 on |r| <= 0.347), in the pairs of Estrin's scheme: a dependency
    # chain of 5 multiply-adds instead of Horner's 13. At H = 16 a step's whole activation is one
    # vector's worth of work, so its latency, not its throughput, is the cost.
    P = tuple(1.0 / math.factorial(i + 1) for i in range(13))
    BIAS, MANTISSA = 1023, 52  # the exponent field of 2^k


class _Float32:
    """The float32 constants, each rounded to float32 once, here."""

    of = np.float32
    LOWEST = np.float32(-104.0)  # exp(-104) is below half the smallest float32 subnormal
    LN2_HI = np.float32(0.693359375)  # 9 significant bits: n * LN2_HI is exact for |n| <= 2^15
    LN2_LO = np.float32(-2.12194440e-4)
    INV_LN2 = np.float32(1.44269504)
    # To degree 7: the first term left out, r^8 / 8!, is < 1.5e-8 of e^r - 1 on |r| <= 0.347,
    # below float32's half ulp.
    P = tuple(np.float32(1.0 / math.factorial(i + 1)) for i in range(7))
    BIAS, MANTISSA = 127, 23


def _float_kind(a):
    """The constants for an argument: float32 for a NumPy float32, float64 for anything else."""
    return _Float32 if isinstance(a, np.float32) else _Float64


# -- the definitions, in Python ---------------------------------------------------------------

def _polynomial_python(f, r):
    """P(r) of f's degree, in Estrin's pairs."""
    P = f.P
    r2 = r * r
    r4 = r2 * r2
    if f is _Float32:
        p01 = P[0] + r * P[1]
        p23 = P[2] + r * P[3]
        p45 = P[4] + r * P[5]
        return (p01 + r2 * p23) + r4 * (p45 + r2 * P[6])
    r8 = r4 * r4
    p01, p23, p45, p67, p89, p1011 = (P[i] + r * P[i + 1] for i in range(0, 12, 2))
    p03 = p01 + r2 * p23
    p47 = p45 + r2 * p67
    p811 = p89 + r2 * p1011
    p812 = p811 + r4 * P[12]
    return (p03 + r4 * p47) + r8 * p812


def _power_of_two_python(f, k):
    """2.0**k in f's dtype for an integer k in its normal range."""
    return f.of(math.ldexp(1.0, k))


def _exp_parts_python(f, x):
    """(s1, s2, q) with exp(x) = s1 * s2 * (1 + q) for x <= 0, where s1 * s2 = 2^n and q = e^r - 1.

    Keeping q apart gives both exp(x) = (s1 + s1*q) * s2 and expm1(x) = s*q + (s - 1) without
    cancellation. 2^n comes as two normal factors so that exp(x) can round into the subnormals
    like the true value. x is clamped at f.LOWEST, below which exp(x) is zero in f's dtype.
    """
    one = f.of(1.0)
    if math.isnan(x):  # compiled code carries NaN through r; Python's int() would raise
        return one, one, x
    x = f.LOWEST if f.LOWEST > x else x
    k = int(x * f.INV_LN2 - f.of(0.5))  # round(x / ln2) for x <= 0 (truncation toward zero)
    n = f.of(k)
    r = (x - n * f.LN2_HI) - n * f.LN2_LO  # |r| <= ln2 / 2, give or take the rounding of k
    q = r * _polynomial_python(f, r)
    half = k >> 1  # floor(k / 2): both halves are normal numbers
    return _power_of_two_python(f, half), _power_of_two_python(f, k - half), q


def _sigmoid_python(a):
    """Logistic function 1 / (1 + exp(-a)), for any finite a."""
    f = _float_kind(a)
    a = f.of(a)
    one = f.of(1.0)
    # exp only sees -|a| <= 0, so it cannot overflow; e in [0, 1].
    s1, s2, q = _exp_parts_python(f, -abs(a))
    e = (s1 + s1 * q) * s2
    d = one / (one + e)
    return d if a >= 0 else e * d


def _tanh_python(a):
    """Hyperbolic tangent, for any finite a: tanh|a| = -m / (2 + m) with m = expm1(-2|a|) in (-1, 0]."""
    f = _float_kind(a)
    a = f.of(a)
    # Through expm1 rather than exp, 1 - e would cancel for small |a|.
    s1, s2, q = _exp_parts_python(f, f.of(-2.0) * abs(a))
    s = s1 * s2
    m = s * q + (s - f.of(1.0))
    t = -m / (f.of(2.0) + m)
    return t if a >= 0 else -t


def _relu_python(a):
    """max(a, 0)."""
    f = _float_kind(a)
    a = f.of(a)
    return a if a > 0 else f.of(0.0)


# -- the same operations, emitted as LLVM IR ------------------------------------------------

class _Emitter:
    """Arithmetic in one float type on an llvmlite builder, one method per Python operation above.

    ``f`` is :class:`_Float64` or :class:`_Float32`: the constants, and the LLVM types they go with.
    """

    def __init__(self, builder, f):
        self.b = builder
        self.f = f
        self.float = ir.DoubleType() if f is _Float64 else ir.FloatType()
        self.int = ir.IntType(64 if f is _Float64 else 32)

    def const(self, value):
        return ir.Constant(self.float, float(value))  # already in f's dtype: exact

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
        fabs = self.b.module.declare_intrinsic("llvm.fabs", [self.float])
        return self.b.call(fabs, [x])

    def select_if(self, condition, x, y):
        return self.b.select(condition, x, y)

    def power_of_two(self, k):
        """:func:`_power_of_two_python`, from the bits: the biased exponent shifted into place."""
        biased = self.b.add(k, ir.Constant(self.int, self.f.BIAS))
        return self.b.bitcast(self.b.shl(biased, ir.Constant(self.int, self.f.MANTISSA)), self.float)

    def polynomial(self, r):
        """:func:`_polynomial_python`."""
        c, add, mul, P = self.const, self.add, self.mul, self.f.P
        r2 = mul(r, r)
        r4 = mul(r2, r2)
        if self.f is _Float32:
            p01, p23, p45 = (add(c(P[i]), mul(r, c(P[i + 1]))) for i in range(0, 6, 2))
            return add(add(p01, mul(r2, p23)), mul(r4, add(p45, mul(r2, c(P[6])))))
        r8 = mul(r4, r4)
        p01, p23, p45, p67, p89, p1011 = (add(c(P[i]), mul(r, c(P[i + 1]))) for i in range(0, 12, 2))
        p03 = add(p01, mul(r2, p23))
        p47 = add(p45, mul(r2, p67))
        p811 = add(p89, mul(r2, p1011))
        p812 = add(p811, mul(r4, c(P[12])))
        return add(add(p03, mul(r4, p47)), mul(r8, p812))

    def exp_parts(self, x):
        """:func:`_exp_parts_python`."""
        c, sub, mul, f = self.const, self.sub, self.mul, self.f
        lowest = c(f.LOWEST)
        x = self.select_if(self.b.fcmp_ordered(">", lowest, x), lowest, x)
        k = self.b.fptosi(sub(mul(x, c(f.INV_LN2)), c(0.5)), self.int)
        n = self.b.sitofp(k, self.float)
        r = sub(sub(x, mul(n, c(f.LN2_HI))), mul(n, c(f.LN2_LO)))
        q = mul(r, self.polynomial(r))
        half = self.b.ashr(k, ir.Constant(self.int, 1))
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
    """An intrinsic ``f(a)`` for a float argument, emitting :class:`_Emitter`'s ``name``: in float32
    for a float32 argument, else in float64."""
    def typer(typingctx, a):
        if not isinstance(a, types.Float):
            return None
        result, f = (types.float32, _Float32) if a == types.float32 else (types.float64, _Float64)

        def codegen(context, builder, signature, args):
            value = context.cast(builder, args[0], signature.args[0], result)
            return getattr(_Emitter(builder, f), name)(value)

        return result(a), codegen

    typer.__name__ = name
    return typer


sigmoid = with_python_fallback(_sigmoid_python)(intrinsic(_activation("sigmoid")))
tanh = with_python_fallback(_tanh_python)(intrinsic(_activation("tanh")))
relu = with_python_fallback(_relu_python)(intrinsic(_activation("relu")))
