"""The kernels' matrix product: a register-blocked micro-kernel, as BLIS and OpenBLAS build theirs.

``C (m, n) = A (m, k) @ B (k, n)``, or ``C += A @ B``. B is first packed into panels of NR
columns (:func:`pack`), each panel k rows of NR contiguous numbers, zero-padded at the right
edge. A tile of C, MR rows by NR columns, is then held in vector registers for the whole inner
dimension: per step of k, NR/lanes vector loads of the panel, MR broadcasts of A's numbers and
MR*NR/lanes fused multiply-adds, with no store until the tile is done. C is read and written
through lane masks, so the right edge needs no scratch tile; a panel with valid columns for one
vector only gets a one-vector tile, and a B that fits in one vector is packed one vector wide.
A small B whose rows are contiguous is not packed at all: one-vector tiles read it in place,
through masks (packing it cost as much as the product; see ``_driver.IN_PLACE_VECTORS``).

Why the kernels do not call BLAS for these products (``np.dot`` inside Numba calls SciPy's
OpenBLAS):

- The recurrences multiply by the same weight matrix at every step. BLAS packs it again on
  every call (a sixth of OpenBLAS's time in the stack benchmark went to packing); here it is
  packed once per kernel call.
- The OpenBLAS 0.3.31 that NumPy and SciPy ship does not recognise AMD's Zen 5 and runs its
  AVX2 (Haswell) kernels there, leaving AVX-512 unused (OpenBLAS issue #6029).
- A call costs less: 40-100 ns for products of a few hundred multiply-adds, against BLAS's
  100-150 ns from a kernel.

Measured on the project's machine (Zen 5, one thread) on the recurrences' shapes: float64
94-120 GFLOP/s against OpenBLAS's 42-57, float32 155-233 against 89-117.

The tile is sized for the machine Numba compiles for: with AVX-512, vectors of 64 bytes and
MR = 8 (24 accumulators of the 32 vector registers); otherwise 32-byte vectors and MR = 4
(12 of 16). NR is three vectors. Rows left over at the bottom go through tiles of one row.
Accumulation runs in order over k with fused multiply-adds, so NaN and inf propagate as in any
product.
"""

import ctypes

import numba
import numba.np.ufunc.parallel
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.typed_passes import _reload_parfors
from numba.extending import intrinsic

from ._jit import c_callable, inlined, kernel, parallel, with_python_fallback


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
#: ``accumulate=False`` as a plain boolean for calls with a constant: a literal ``False`` is typed
#: ``Literal[bool](False)``, and every product called with one compiled a second copy of itself.
OVERWRITE = np.bool_(False)
# A chunk of A's rows is kept this small (bytes), so that it stays in the level-2 cache while
# every panel of B passes over it.
CHUNK_BYTES = 1 << 18
# A product is split over threads, when more than one is allowed, from this many multiply-adds times
# the element size in bytes (float64: 2^20 multiply-adds, float32: 2^21; a float32 multiply-add
# takes half the time). Measured on 2 cores (Xeon, OpenMP layer), 2 threads over 1: float64
# 16x64x256 1.17x, 16x128x512 1.63x, 8x256x1024 2.2x; float32 16x128x512 1.41x, 8x256x1024 1.72x,
# 128x20x60 0.70x. A launch costs about 2 µs, and the second thread's share must pay for it.
PARALLEL_WORK = 1 << 23

def _tile_python(rows, vectors, k, pa, rs_a, cs_a, pb, ldb, pc, ldc, cols, accumulate, like):
    """:func:`_tile` for ``NUMBA_DISABLE_JIT=1``: the same tile of C, through NumPy views of the addresses."""
    def view(address, shape, strides):
        extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides)) if all(shape) else 0
        buffer = (ctypes.c_char * (extent * like.itemsize)).from_address(address)
        flat = np.frombuffer(buffer, like.dtype)
        return np.lib.stride_tricks.as_strided(flat, shape, tuple(s * like.itemsize for s in strides))

    a = view(pa, (rows, k), (rs_a, cs_a))
    b = view(pb, (k, cols), (ldb, 1))
    c = view(pc, (rows, cols), (ldc, 1))
    c[...] = (c if accumulate else 0.0) + a @ b


@with_python_fallback(_tile_python)
@intrinsic
def _tile(typingctx, rows, vectors, k, pa, rs_a, cs_a, pb, ldb, pc, ldc, cols, accumulate, like):
    """C tile (+)= A rows @ one panel, in registers.

    C[r*ldc + j] (+)= sum_p A[r*rs_a + p*cs_a] * Bp[p*ldb + j] for r < ``rows`` and
    j < ``cols`` <= ``vectors`` * lanes <= NR (``rows`` and ``vectors`` compile-time constants),
    where ``pa``, ``pb``, ``pc`` are the addresses of A[0, 0],
    the panel and C[0, 0]. Strides count elements of ``like``'s dtype. C is read and written
    through lane masks, so a panel at the right edge needs no scratch and touches no column
    past ``cols``.

    Addresses rather than arrays keep this to one compiled copy per row count and dtype, whatever
    the layouts of the arrays (when the products still linked the core into every kernel, its
    size showed in the compile time of every cell).
    """
    if not isinstance(rows, types.IntegerLiteral) or not isinstance(vectors, types.IntegerLiteral):
        return None
    mr, nv = rows.literal_value, vectors.literal_value
    dtype = like.dtype

    def codegen(context, builder, signature, args):
        _, _, k_, pa_, rs_a_, cs_a_, pb_, ldb_, pc_, ldc_, cols_, accumulate_, _ = args
        element = context.get_value_type(dtype)
        size = dtype.bitwidth // 8
        lanes = VECTOR_BYTES // size
        vector = ir.VectorType(element, lanes)
        vector_ptr = vector.as_pointer()
        i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
        mask_type = ir.VectorType(i1, lanes)
        suffix = f"v{lanes}f{dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                             f"llvm.fma.{suffix}")
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector_ptr, i32, mask_type, vector]),
            f"llvm.masked.load.{suffix}.p0")
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vector, vector_ptr, i32, mask_type]),
            f"llvm.masked.store.{suffix}.p0")
        align = ir.Constant(i32, size)
        pa = builder.inttoptr(pa_, element.as_pointer())
        pb = builder.inttoptr(pb_, element.as_pointer())
        pc = builder.inttoptr(pc_, element.as_pointer())

        def splat(value, vector_type):
            one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                          ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

        # Column j of the tile is valid when j < cols.
        index_type = ir.VectorType(i64, lanes)
        limit = splat(cols_, index_type)
        masks = [builder.icmp_signed("<", ir.Constant(index_type, list(range(v * lanes, (v + 1) * lanes))), limit)
                 for v in range(nv)]
        targets = [[builder.bitcast(builder.gep(pc, [builder.add(builder.mul(ir.Constant(i64, r), ldc_),
                                                                 ir.Constant(i64, v * lanes))]), vector_ptr)
                    for v in range(nv)] for r in range(mr)]
        # Accumulators as stack slots, which LLVM promotes to registers; with accumulate they
        # start from C.
        zero = ir.Constant(vector, [0.0] * lanes)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(nv)] for _ in range(mr)]
        with builder.if_then(builder.icmp_unsigned("!=", accumulate_, ir.Constant(accumulate_.type, 0))):
            for r in range(mr):
                for v in range(nv):
                    builder.store(builder.call(masked_load, [targets[r][v], align, masks[v], zero]), acc[r][v])
        with cgutils.for_range(builder, k_) as loop:
            p = loop.index
            row_b = builder.gep(pb, [builder.mul(p, ldb_)])
            # A one-vector tile loads B through the column mask: B may be read in place (see gemm),
            # where columns past ``cols`` are another row's or past the end of the array. Wider
            # tiles only ever read packed panels, zero-padded, with plain loads: masked ones cost
            # float32 products 17% (218 against 181 GFLOP/s at 32x256x256).
            addresses = [builder.bitcast(builder.gep(row_b, [ir.Constant(i64, v * lanes)]), vector_ptr)
                         for v in range(nv)]
            if nv == 1:
                bv = [builder.call(masked_load, [addresses[0], align, masks[0], zero])]
            else:
                bv = [builder.load(address, align=size) for address in addresses]
            col_a = builder.gep(pa, [builder.mul(p, cs_a_)])
            for r in range(mr):
                number = splat(builder.load(builder.gep(col_a, [builder.mul(ir.Constant(i64, r), rs_a_)])), vector)
                for v in range(nv):
                    builder.store(builder.call(fma, [number, bv[v], builder.load(acc[r][v])]), acc[r][v])
        for r in range(mr):
            for v in range(nv):
                builder.call(masked_store, [builder.load(acc[r][v]), targets[r][v], align, masks[v]])
        return context.get_dummy_value()

    return types.void(rows, vectors, types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
                      types.intp, types.intp, types.intp, types.boolean, like), codegen


def _threads_python():
    """:func:`threads` for ``NUMBA_DISABLE_JIT=1``."""
    return numba.get_num_threads()


@with_python_fallback(_threads_python)
@intrinsic
def threads(typingctx):
    """The number of threads a parallel loop started now would use (:func:`numba.get_num_threads`).

    ``numba.get_num_threads`` itself, called from compiled code, embeds the address of a ctypes
    function and so stops every kernel that calls it from being cached; this calls the threading
    layer's ``get_num_threads`` by its symbol, as Numba's own parallel loops do.
    """
    def codegen(context, builder, signature, args):
        # The threading layer defines the symbol, which must exist when this code is linked: now,
        # and whenever it is loaded from Numba's cache (a call to an undefined symbol is a crash, not
        # an error), which is what Numba's own hook for cached parallel functions, _reload_parfors,
        # sees to. Loading the layer lazily, rather than at import, matters: the process's first
        # OpenMP runtime is the one every later library gets, and PyTorch imported after Numba had
        # loaded the system's GNU OpenMP ran 15x slower on two threads.
        numba.np.ufunc.parallel._launch_threads()
        context.active_code_library._reload_init.add(_reload_parfors)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                                  "get_num_threads")
        return builder.call(function, [])

    return types.intp(), codegen


@kernel
def packed_shape(k, n, like):
    """Shape (panels, k, width) of a (k, n) matrix of ``like``'s dtype once packed: panels NR
    columns wide, or a single panel one vector wide when n fits in one vector (a weight matrix
    with two columns is not padded to 24)."""
    lanes = VECTOR_BYTES // like.itemsize
    width = lanes if n <= lanes else VECTORS * lanes
    return (n + width - 1) // width, k, width


@kernel
def pack(b, bp):
    """Copy ``b (k, n)``, any strides, into panels ``bp`` of :func:`packed_shape`, zeros right of column n."""
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


@kernel
def _gemm_core(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed, like):
    """:func:`gemm` on addresses and element strides, on at most ``allowed`` threads: one compiled
    copy per dtype (that of ``like``, an array of any size).

    B is ``panels`` panels of ``width`` columns, panel q starting ``q * step`` elements after
    ``pb``, its rows ``ldb`` elements apart: packed panels (step k * width, ldb = width) or B
    itself (step = width, ldb its row stride).
    """
    if allowed > 1 and splits_itself(m, n, k, like.itemsize):
        _gemm_split(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed, like)
        return
    # A in chunks of rows small enough to stay in cache while each panel of B, in turn, passes
    # over all of the chunk's tiles: B is read once per chunk, not once per tile.
    chunk = _chunk_rows(k, like.itemsize)
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        for q in range(panels):
            _block(start, stop, q, k, pa, rs_a, cs_a, pb, ldb, step, width, n, pc, ldc, accumulate, like)


@inlined
def splits_itself(m, n, k, itemsize):
    """Whether an (m, k) x (k, n) product of that element size is shared out over the threads
    allowed (from PARALLEL_WORK), or runs on the calling thread."""
    return m * n * k * itemsize >= PARALLEL_WORK


@parallel
def _gemm_split(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, threads, like):
    """:func:`_gemm_core` on ``threads`` threads: the (row chunk, panel) blocks of C are shared out.

    Each element of C is computed by exactly the same sequence of multiply-adds whichever thread
    computes it, and in whichever tile: nothing is summed across threads, so the result is
    bit-identical to the single-threaded product for every thread count.
    """
    chunk = _chunk_rows(k, like.itemsize)
    chunks = (m + chunk - 1) // chunk
    # At least two blocks a thread, so that a thread is not left idle by a narrow C (the recurrences'
    # per-step products have a few row tiles and a few dozen panels, or the other way round).
    if chunks * panels < 2 * threads:
        tiles = (m + MR - 1) // MR
        chunks = min(tiles, (2 * threads + panels - 1) // panels)
        chunk = (tiles + chunks - 1) // chunks * MR
        chunks = (m + chunk - 1) // chunk
    for u in numba.prange(chunks * panels):
        start = (u // panels) * chunk
        _gemm_block(start, min(m, start + chunk), u % panels, k, pa, rs_a, cs_a, pb, ldb, step, width, n, pc, ldc,
                    accumulate, like)


@inlined
def _chunk_rows(k, size):
    """Rows of A in a chunk: a multiple of MR whose k columns fit in CHUNK_BYTES."""
    return max(MR, (CHUNK_BYTES // max(1, k * size)) // MR * MR)


@kernel
def _gemm_block(start, stop, q, k, pa, rs_a, cs_a, pb, ldb, step, width, n, pc, ldc, accumulate, like):
    """:func:`_block` as a kernel of its own, called by symbol from the split product's parallel
    loop: a block is thousands of multiply-adds, so the call is nothing, while Numba's parallel
    lowering, given the tiles' code inline, had compiled it again (0.3-0.4 s of each dtype's cold
    start). The serial loop keeps ``_block`` inlined: small products felt the call (2-4%)."""
    _block(start, stop, q, k, pa, rs_a, cs_a, pb, ldb, step, width, n, pc, ldc, accumulate, like)


@inlined
def _block(start, stop, q, k, pa, rs_a, cs_a, pb, ldb, step, width, n, pc, ldc, accumulate, like):
    """Rows ``start..stop-1`` of C, columns of panel ``q``."""
    size = like.itemsize
    lo = q * width
    cols = min(width, n - lo)
    panel = pb + q * step * size
    a_rows, c_cols = pa + start * rs_a * size, pc + (start * ldc + lo) * size
    # Valid columns for one vector only (a narrow C, its right edge, or B read in place): a tile of
    # one vector, rather than three with two thirds thrown away. (A tile of two vectors as well ran
    # a 16-column product 1.25x faster; it cost 2.5 s of cold compile per dtype when every kernel
    # linked the core, measured before the core was called by its symbol.)
    lanes = VECTOR_BYTES // size
    if cols <= lanes:
        _panel(MR, 1, stop - start, k, a_rows, rs_a, cs_a, panel, ldb, c_cols, ldc, cols, accumulate, like)
    else:
        _panel(MR, VECTORS, stop - start, k, a_rows, rs_a, cs_a, panel, ldb, c_cols, ldc, cols, accumulate, like)


@inlined
def _panel(rows, vectors, m, k, pa, rs_a, cs_a, pb, ldb, pc, ldc, cols, accumulate, like):
    """Rows 0..m-1 of A (at address ``pa``) times one panel: tiles of ``rows`` rows, then single rows."""
    size = like.itemsize
    i = 0
    while i + rows <= m:
        _tile(rows, vectors, k, pa + i * rs_a * size, rs_a, cs_a, pb, ldb, pc + i * ldc * size, ldc, cols, accumulate,
              like)
        i += rows
    while i < m:
        _tile(1, vectors, k, pa + i * rs_a * size, rs_a, cs_a, pb, ldb, pc + i * ldc * size, ldc, cols, accumulate,
              like)
        i += 1


# -- the core, compiled once per dtype and called by its symbol --------------------------------
#
# A compiled function that calls another links the callee's code into its own module and has
# LLVM optimise and emit all of it again: a function doing nothing but call one product took
# 1.6 s to compile, with the product itself already compiled. Every kernel multiplies, so every
# kernel paid that for the product's tiles. Instead, the core is compiled once per dtype as a
# C-callable function (cached on disk like the kernels), its address is given to LLVM under a
# symbol of its own, and the products call it by that symbol: the same caller compiled in 0.1 s.
# Each function's code is then the product's entry alone; the price is a plain call that LLVM
# cannot inline, a few nanoseconds against a product's hundreds.

_CORE_TYPES = (types.intp,) * 15  # m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed
_LIKE_FLOAT64 = np.empty((0, 0, 0), np.float64)
_LIKE_FLOAT32 = np.empty((0, 0, 0), np.float32)


def _core_float64(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed):
    """:func:`_gemm_core` in float64, as a C-callable function (``accumulate`` 0 or 1)."""
    _gemm_core(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate != 0, allowed,
               _LIKE_FLOAT64)


def _core_float32(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed):
    """:func:`_gemm_core` in float32, as a C-callable function (``accumulate`` 0 or 1)."""
    _gemm_core(m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate != 0, allowed,
               _LIKE_FLOAT32)


_CORES = {"float64": _core_float64, "float32": _core_float32}


def _symbol(dtype):
    return f"fastrnn_gemm_core_{dtype}"


def load_core(dtype):
    """Compile (or load from the cache) the core for ``dtype`` ("float64" or "float32") and give
    its address to LLVM under its symbol, once per process. Code calling the symbol must not be
    linked or loaded before: the core's callers run this when they are compiled, and on loading
    from the cache through :func:`_load_float64` / :func:`_load_float32`."""
    name = _symbol(dtype)
    if llvm.address_of_symbol(name):
        return
    # The core's split product is a parallel loop, whose code refers to the threading layer's
    # symbols (see :func:`threads`).
    numba.np.ufunc.parallel._launch_threads()
    function = c_callable(_CORES[dtype], types.void(*_CORE_TYPES))
    llvm.add_symbol(name, function.address)


def _load_float64():
    load_core("float64")


def _load_float32():
    load_core("float32")


_LOADERS = {"float64": _load_float64, "float32": _load_float32}


@with_python_fallback(_gemm_core)  # under NUMBA_DISABLE_JIT=1, the core itself in Python
@intrinsic
def _core(typingctx, m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed, like):
    """:func:`_gemm_core` for ``like``'s dtype, called by its symbol (see above)."""
    dtype = str(like.dtype)
    if dtype not in _CORES:
        return None
    load_core(dtype)
    arguments = (m, k, pa, rs_a, cs_a, pb, ldb, step, panels, width, n, pc, ldc, accumulate, allowed)

    def codegen(context, builder, signature, args):
        # Loading a caller from the cache loads the core first (a call to an undefined symbol is
        # a crash, not an error).
        context.active_code_library._reload_init.add(_LOADERS[dtype])
        i64 = ir.IntType(64)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i64] * 15),
                                                  _symbol(dtype))
        values = [context.cast(builder, value, fromty, types.intp)
                  for value, fromty in zip(args[:15], signature.args[:15])]
        builder.call(function, values)
        return context.get_dummy_value()

    return types.void(*arguments, like), codegen


@inlined
def gemm(a, b, bp, c, accumulate, allowed):
    """``c = a @ b`` (or ``c += a @ b`` with ``accumulate``) on at most ``allowed`` threads
    (:func:`threads` for as many as Numba allows; 1 inside a parallel loop, which has its threads
    already).

    ``bp`` is ``b`` packed by :func:`pack`, or an empty 3-d array of the dtype to read ``b`` in
    place, which needs its rows contiguous (unit column stride): for a B too small to be worth
    packing. In place, B is read one vector's width of columns at a time, through the tiles'
    column masks, so nothing past its last column is read; a one-vector tile does a third of a
    full tile's work per load of A, so this is for small products only.

    ``a (m, k)`` may have any strides (a transposed view costs nothing); ``c (m, n)`` must have
    unit column stride and must not overlap ``a`` or ``b``.
    """
    size = a.itemsize
    n = b.shape[1]
    # One call of the product for both forms of B, each its panels' address, stride and row stride.
    # In place, B is taken as panels of one vector, read by one-vector tiles through their masks.
    if bp.shape[0] == 0:
        width = VECTOR_BYTES // size
        pb, ldb, step, panels = b.ctypes.data, b.strides[0] // size, width, (n + width - 1) // width
    else:
        panels, k, width = bp.shape
        pb, ldb, step = bp.ctypes.data, width, k * width
    _core(a.shape[0], a.shape[1], a.ctypes.data, a.strides[0] // size, a.strides[1] // size, pb, ldb, step,
          panels, width, n, c.ctypes.data, c.strides[0] // size, accumulate, allowed, bp)


@kernel
def matmul(a, b, c):
    """``c = a @ b``, packing ``b`` on the way (for products done once; reuse :func:`packed` otherwise)."""
    gemm(a, b, packed(b), c, OVERWRITE, threads())
