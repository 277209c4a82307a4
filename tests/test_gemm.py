"""The kernels' own matrix product (fastrnn.kernels._gemm) and the driver's products built on it.

Checked against NumPy with an error bound of the dtype: a sum of k products in floating point is
within k * eps * (|A| @ |B|) of the exact one, element by element (the classic bound for inner
products; the tiled product, like any BLAS, only changes the order of the additions).
"""

import numba
import numpy as np
import pytest

from fastrnn.kernels import _gemm
from fastrnn.kernels._driver import mm_ab, mm_abt, mm_atb, prepare

EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def assert_product(c, a, b, dtype, extra=None):
    exact = a.astype(np.float64) @ b.astype(np.float64)  # for float64 itself within the same bound
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    if extra is not None:
        exact, scale = exact + extra, scale + np.abs(extra)
    bound = 2 * (a.shape[1] + 1) * EPS[dtype] * scale + np.finfo(dtype).tiny
    assert c.dtype == dtype
    np.testing.assert_array_less(np.abs(c - exact), bound)


# m spans full tiles of MR rows, a tile of 4 and single rows; n spans panels that end exactly
# at, just before and just after a panel's edge (NR = 24 float64 or 48 float32 columns with AVX-512).
SHAPES = [(1, 1, 1), (1, 64, 192), (3, 5, 7), (4, 9, 24), (7, 16, 25), (8, 3, 48), (12, 33, 47), (13, 64, 49),
          (17, 8, 96), (45, 70, 100), (128, 64, 192), (300, 257, 65)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_gemm_matches_numpy_within_the_dtypes_bound(m, k, n, dtype):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.full((m, n), np.nan, dtype)
    _gemm.gemm(a, b, _gemm.packed(b), c, False, numba.get_num_threads())
    assert_product(c, a, b, dtype)
    # Accumulating adds to what c holds.
    before = rng.standard_normal((m, n)).astype(dtype)
    c[...] = before
    _gemm.gemm(a, b, _gemm.packed(b), c, True, numba.get_num_threads())
    assert_product(c, a, b, dtype, extra=before.astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_gemm_reads_b_in_place_when_given_no_packed_form(m, k, n, dtype):
    """B unpacked, as a window with contiguous rows of a wider array: the columns right of it,
    which the tiles' masked loads must not pick up, hold NaN."""
    rng = np.random.default_rng(m * 1000 + k * 10 + n + 1)
    a = rng.standard_normal((m, k)).astype(dtype)
    wide = np.full((k, n + 9), np.nan, dtype)
    b = wide[:, 2:2 + n]
    b[...] = rng.standard_normal((k, n))
    c = np.full((m, n), np.nan, dtype)
    in_place = np.empty((0, 0, 0), dtype)
    _gemm.gemm(a, b, in_place, c, False, numba.get_num_threads())
    assert_product(c, a, b, dtype)
    before = rng.standard_normal((m, n)).astype(dtype)
    c[...] = before
    _gemm.gemm(a, b, in_place, c, True, numba.get_num_threads())
    assert_product(c, a, b, dtype, extra=before.astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_reads_strided_views_and_writes_only_its_rows_and_columns(dtype):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((70, 41)).astype(dtype)
    a = base[3:60:1, 2:40].T  # (38, 57): a transposed window, neither row nor column contiguous
    b = rng.standard_normal((57, 30)).astype(dtype)
    big = np.full((50, 40), 7.0, dtype)
    c = big[5:43, 4:34]  # rows with a stride of 40
    _gemm.matmul(a, b, c)
    assert_product(c, a, b, dtype)
    outside = np.ones(big.shape, bool)
    outside[5:43, 4:34] = False
    assert (big[outside] == 7.0).all()


@pytest.mark.parametrize("n", [30, 2])
def test_pack_lays_out_panels_with_zeros_past_the_last_column(n):
    b = np.arange(1.0, 1.0 + 5 * n).reshape(5, n)
    bp = _gemm.packed(b)
    panels, k, width = bp.shape
    lanes = _gemm.VECTOR_BYTES // 8
    # Panels three vectors wide; a B that fits in one vector is packed one vector wide.
    assert width == (lanes if n <= lanes else 3 * lanes)
    assert (panels, k) == (-(-n // width), 5)
    for q in range(panels):
        cols = b[:, q * width:(q + 1) * width]
        np.testing.assert_array_equal(bp[q, :, :cols.shape[1]], cols)
        assert (bp[q, :, cols.shape[1]:] == 0).all()


def test_tile_configuration_matches_the_cpu_numba_compiles_for():
    import llvmlite.binding as llvm
    import numba

    if numba.config.CPU_FEATURES:  # a target chosen with NUMBA_CPU_NAME / NUMBA_CPU_FEATURES
        avx512 = "+avx512f" in numba.config.CPU_FEATURES.split(",")
    else:
        avx512 = llvm.get_host_cpu_features().get("avx512f", False)
    assert _gemm.VECTOR_BYTES == (64 if avx512 else 32)
    assert _gemm.MR == (8 if avx512 else 4)


# An AVX2 CPU's features, as Numba takes them: the tile without AVX-512 (32-byte vectors, 4 rows).
AVX2 = "+64bit,+avx,+avx2,+fma,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16,+bmi,+bmi2,+f16c,+lzcnt,+movbe"


def test_the_avx2_tile_passes_these_tests_too(tmp_path):
    """This machine has AVX-512; the other configuration is checked by compiling for Haswell."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                           "-k", "not avx2_tile"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


@pytest.mark.parametrize("m, k, n", [(16, 64, 64), (9, 30, 50)])
def test_gemm_propagates_nan_and_inf(m, k, n):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    a[0, 3] = np.nan
    a[-1, 5] = np.inf
    c = np.empty((m, n))
    _gemm.matmul(a, b, c)
    assert np.isnan(c[0]).all()
    assert not np.isfinite(c[-1]).any()
    assert np.isfinite(c[1:-1]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, k, n", [(2, 4, 16), (1, 16, 2), (32, 64, 192), (33, 7, 5), (40, 8, 16)])
def test_driver_products_small_and_tiled(m, k, n, dtype):
    """mm_ab, mm_abt and mm_atb, on both sides of the loops-or-tiles threshold."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    mm_ab(a, b, prepare(m, b), out, False, numba.get_num_threads())
    assert_product(out, a, b, dtype)
    before = out.copy()
    mm_ab(a, b, prepare(m, b), out, True, numba.get_num_threads())
    assert_product(out, a, b, dtype, extra=before.astype(np.float64))
    bt = np.ascontiguousarray(b.T)
    mm_abt(a, bt, prepare(m, bt.T), out, numba.get_num_threads())
    assert_product(out, a, b, dtype)
    # a.T @ b with a (k, m): the weight-gradient shape, packing b into scratch.
    at = np.ascontiguousarray(a.T)
    panels, rows, width = _gemm.packed_shape(k, n, a)
    scratch = np.empty(panels * rows * width, dtype)
    mm_atb(at, b, scratch, out, False)  # out (m, n) = at.T (m, k) @ b (k, n)
    assert_product(out, a, b, dtype)
    before = out.copy()
    mm_atb(at, b, scratch, out, True)
    assert_product(out, a, b, dtype, extra=before.astype(np.float64))
    # A b whose rows are not contiguous is packed into scratch rather than read in place.
    spread = np.repeat(b, 2, axis=1)[:, ::2]
    assert not spread.flags.c_contiguous
    mm_atb(at, spread, scratch, out, False)
    assert_product(out, a, b, dtype)
    # Prepared for fewer rows than the call has (prepare may have chosen loops there): still exact,
    # b read in place or packed on the way.
    mm_ab(a, b, prepare(1, b), out, False, numba.get_num_threads())
    assert_product(out, a, b, dtype)
    mm_ab(a, spread, prepare(1, spread), out, False, numba.get_num_threads())
    assert_product(out, a, b, dtype)
    mm_abt(a, bt, prepare(1, bt.T), out, numba.get_num_threads())
    assert_product(out, a, b, dtype)
