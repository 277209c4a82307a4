"""Property-based: kernels equal the reference for any shape and truncation hypothesis finds."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastrnn.registry import CASES

from .helpers import DTYPES, assert_pair, run_pair


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    T=st.integers(1, 9),
    B=st.integers(1, 4),
    I=st.integers(1, 5),
    H=st.integers(1, 6),
    dtype=st.sampled_from(DTYPES),
    truncate=st.one_of(st.none(), st.integers(0, 11)),
    with_state=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_kernel_matches_reference_for_any_shape(case, T, B, I, H, dtype, truncate, with_state, seed):
    results = run_pair(case, T, B, I, H, dtype, truncate, with_state, seed=seed)
    assert_pair(results, dtype, f"{case} T={T} B={B} I={I} H={H} k={truncate} {dtype} seed={seed}")
