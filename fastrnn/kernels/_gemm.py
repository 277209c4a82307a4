"""The kernels' matrix product: a register-blocked micro-kernel, as BLIS and OpenBLAS build theirs.

``C (m, n) = A (m, k) @ B (k, n)``, or ``C += A @ B``. B is first packed into panels of NR
columns (:func:`pack`), each panel k rows of NR contiguous numbers, zero-padded at the right
edge. A tile of C, MR rows by NR columns, is then held in vector registers for the whole inner
dimension: per step of k, NR/lanes vector loads of the panel, MR broadcasts of A's numbers and
MR*NR/lanes fused multiply-adds, with no store until the tile is done.

Why the kernels do not call BLAS for these products (``np.dot`` inside Numba calls SciPy's
OpenBLAS):

- The recurrences multiply by the same weight matrix at every step. BLAS packs it again on
  every call (a sixth of OpenBLAS's time in the stack benchmark went to packing); here it is
  packed once per kernel call.
- The OpenBLAS 0.3.31 that NumPy and SciPy ship does not recognise AMD's Zen 5 and runs its
  AVX2 (Haswell) kernels there, leaving AVX-512 unused (OpenBLAS issue #6029).

Measured on the project's machine (Zen 5, one thread) on the recurrences' shapes: float64
94-114 GFLOP/s against OpenBLAS's 42-57, float32 155-233 against 93-114.

The tile is sized for the machine Numba compiles for: with AVX-512, vectors of 64 bytes and
MR = 8 (24 accumulators of the 32 vector registers); otherwise 32-byte vectors and MR = 4
(12 of 16). NR is three vectors. Rows left over at the bottom go through tiles of one row.
Accumulation runs in order over k with fused multiply-adds, so NaN and inf propagate as in any
product.
"""

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import inlined, kernel


def _vector_bytes():
    """64 where Numba compiles for a CPU with AVX-512, else 32."""
    features = numba.config.CPU_FEATURES
    if not features:
        try:
            features = ",".join(f"+{name}" for name, on in llvm.get_host_cpu_features().items() if on)
        except RuntimeError:  # LLVM cannot tell on some hosts; 32-byte vectors are safe everywhere
            features = ""
    return 64 if "+avx512f" in features.split(",") else 32


VECTOR_BYTES = _vector_bytes()
#: Rows of a full tile.
MR = 8 if VECTOR_BYTES == 64 else 4
#: Vectors per tile row: NR = VECTORS * lanes columns.
VECTORS = 3
# A chunk of A's rows is kept this small (bytes), so that it stays in the level-2 cache while
# every panel of B passes over it.
CHUNK_BYTES = 1 << 18


@intrinsic
def _tile(typingctx, rows, k, pa, rs_a, cs_a, pb, pc, ldc, accumulate, like):
    """C tile (+)= A rows @ one panel, in registers.

    C[r*ldc + j] (+)= sum_p A[r*rs_a + p*cs_a] * Bp[p*NR + j] for r < ``rows`` (a compile-time
    constant) and j < NR, where ``pa``, ``pb``, ``pc`` are the addresses of A[0, 0], the panel
    and C[0, 0]. Strides count elements of ``like``'s dtype.

    Addresses rather than arrays keep this to one compiled copy per row count and dtype, whatever
    the layouts of the arrays: every kernel that multiplies links the product's machine code into
    its own, and its size showed in the compile time of every cell.
    """
    if not isinstance(rows, types.IntegerLiteral):
        return None
    mr = rows.literal_value
    dtype = like.dtype

    def codegen(context, builder, signature, args):
        _, k_, pa_, rs_a_, cs_a_, pb_, pc_, ldc_, accumulate_, _ = args
        element = context.get_value_type(dtype)
        size = dtype.bitwidth // 8
        lanes = VECTOR_BYTES // size
        vector = ir.VectorType(element, lanes)
        vector_ptr = vector.as_pointer()
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                             f"llvm.fma.v{lanes}f{dtype.bitwidth}")
        pa = builder.inttoptr(pa_, element.as_pointer())
        pb = builder.inttoptr(pb_, element.as_pointer())
        pc = builder.inttoptr(pc_, element.as_pointer())
        # The tile of C, or zeros: loaded either way (C's memory is valid) and selected, so that
        # no branch is needed; accumulators as stack slots, which LLVM promotes to registers.
        add = builder.icmp_unsigned("!=", accumulate_, ir.Constant(accumulate_.type, 0))
        zero = ir.Constant(vector, [0.0] * lanes)
        targets = [[builder.bitcast(builder.gep(pc, [builder.add(builder.mul(ir.Constant(i64, r), ldc_),
                                                                 ir.Constant(i64, v * lanes))]), vector_ptr)
                    for v in range(VECTORS)] for r in range(mr)]
        acc = [[cgutils.alloca_once_value(builder, builder.select(add, builder.load(t, align=size), zero))
                for t in row] for row in targets]
        broadcast = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        undef = ir.Constant(vector, ir.Undefined)
        with cgutils.for_range(builder, k_) as loop:
            p = loop.index
            row_b = builder.gep(pb, [builder.mul(p, ir.Constant(i64, VECTORS * lanes))])
            bv = [builder.load(builder.bitcast(builder.gep(row_b, [ir.Constant(i64, v * lanes)]), vector_ptr),
                               align=size) for v in range(VECTORS)]
            col_a = builder.gep(pa, [builder.mul(p, cs_a_)])
            for r in range(mr):
                number = builder.load(builder.gep(col_a, [builder.mul(ir.Constant(i64, r), rs_a_)]))
                splat = builder.shuffle_vector(builder.insert_element(undef, number, ir.Constant(i32, 0)),
                                               undef, broadcast)
                for v in range(VECTORS):
                    builder.store(builder.call(fma, [splat, bv[v], builder.load(acc[r][v])]), acc[r][v])
        for r in range(mr):
            for v in range(VECTORS):
                builder.store(builder.load(acc[r][v]), targets[r][v], align=size)
        return context.get_dummy_value()

    return types.void(rows, types.intp, types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
                      types.boolean, like), codegen


@intrinsic
def _pointer(typingctx, address, like):
    """The integer ``address`` as a pointer to ``like``'s dtype (for ``numba.carray``)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return types.CPointer(like.dtype)(address, like), codegen


@inlined
def _store_edge(rows, cols, edge, pc, ldc, accumulate):
    """C[r, j] (+)= edge[r, j] for r < rows, j < cols, C at address ``pc`` with row stride ``ldc``."""
    c = numba.carray(_pointer(pc, edge), ((rows - 1) * ldc + cols,))
    for r in range(rows):
        for j in range(cols):
            if accumulate:
                c[r * ldc + j] += edge[r, j]
            else:
                c[r * ldc + j] = edge[r, j]


@kernel
def packed_shape(k, n, like):
    """Shape (panels, k, NR) of a (k, n) matrix of ``like``'s dtype once packed."""
    width = VECTORS * (VECTOR_BYTES // like.itemsize)
    return (n + width - 1) // width, k, width


@kernel
def pack(b, bp):
    """Copy ``b (k, n)``, any strides, into panels ``bp (panels, k, NR)``, zeros right of column n."""
    k, n = b.shape
    width = bp.shape[2]
    for q in range(bp.shape[0]):
        lo = q * width
        valid = min(width, n - lo)
        for p in range(k):
            for j in range(valid):
                bp[q, p, j] = b[p, lo + j]
            for j in range(valid, width):
                bp[q, p, j] = 0.0


@kernel
def packed(b):
    """A new packed copy of ``b (k, n)``."""
    bp = np.empty(packed_shape(b.shape[0], b.shape[1], b), b.dtype)
    pack(b, bp)
    return bp


@inlined
def _rows_times_panel(rows, i, q, pa, rs_a, cs_a, k, bp, pc, ldc, n, accumulate, edge):
    """C[i:i+rows, panel q's columns] (+)= A[i:i+rows] @ panel q; ``rows`` is a compile-time constant."""
    width = bp.shape[2]
    size = bp.itemsize
    lo = q * width
    a_rows = pa + i * rs_a * size
    panel = bp.ctypes.data + q * k * width * size
    if lo + width <= n:
        _tile(rows, k, a_rows, rs_a, cs_a, panel, pc + (i * ldc + lo) * size, ldc, accumulate, bp)
    else:
        # The right edge: the tile goes to scratch, its valid columns to C.
        _tile(rows, k, a_rows, rs_a, cs_a, panel, edge.ctypes.data, width, False, bp)
        _store_edge(rows, n - lo, edge, pc + (i * ldc + lo) * size, ldc, accumulate)


@kernel
def _gemm_core(m, k, pa, rs_a, cs_a, bp, n, pc, ldc, accumulate):
    """:func:`gemm` on addresses and element strides: one compiled copy per dtype."""
    edge = np.empty((MR, bp.shape[2]), bp.dtype)
    # A in chunks of rows small enough to stay in cache while each panel of B, in turn, passes
    # over all of the chunk's tiles: B is read once per chunk, not once per tile.
    chunk = max(MR, (CHUNK_BYTES // max(1, k * bp.itemsize)) // MR * MR)
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        for q in range(bp.shape[0]):
            i = start
            while i + MR <= stop:
                _rows_times_panel(MR, i, q, pa, rs_a, cs_a, k, bp, pc, ldc, n, accumulate, edge)
                i += MR
            while i < stop:
                _rows_times_panel(1, i, q, pa, rs_a, cs_a, k, bp, pc, ldc, n, accumulate, edge)
                i += 1


@kernel
def gemm(a, bp, c, accumulate):
    """``c = a @ B`` (or ``c += a @ B`` with ``accumulate``) where ``bp`` is B packed by :func:`pack`.

    ``a (m, k)`` may have any strides (a transposed view costs nothing); ``c (m, n)`` must have
    unit column stride and must not overlap ``a`` or ``bp``.
    """
    size = a.itemsize
    _gemm_core(a.shape[0], a.shape[1], a.ctypes.data, a.strides[0] // size, a.strides[1] // size, bp, c.shape[1],
               c.ctypes.data, c.strides[0] // size, accumulate)


@kernel
def matmul(a, b, c):
    """``c = a @ b``, packing ``b`` on the way (for products done once; reuse :func:`packed` otherwise)."""
    gemm(a, packed(b), c, False)
