"""fastrnn bench: side-by-side rows, FLOP accounting, the GEMM fraction, JSON and the torch column."""

import json

import numba
import numpy as np
import pytest

import fastrnn
from fastrnn import bench
from fastrnn.cli import _blas_kernels, main
from fastrnn.registry import BY_NAME


def test_flop_count_follows_the_products():
    T, B = 5, 3
    # 6 T B (I + H) G: forward, weight gradients and input/state gradients of both products.
    assert bench.flop_count(fastrnn.RNN(4, 7), T, B) == 6 * T * B * (4 + 7) * 7
    assert bench.flop_count(fastrnn.LSTM(4, 7), T, B) == 6 * T * B * (4 + 7) * 28
    # +RNN: its recurrence reads the projected input (H features), plus the projection itself.
    assert bench.flop_count(fastrnn.IntersectionRNN(4, 7), T, B) == 6 * T * B * 14 * 28 + 6 * T * B * 4 * 7
    assert bench.flop_count(fastrnn.IntersectionRNN(7, 7), T, B) == 6 * T * B * 14 * 28
    stack = fastrnn.DilatedRNN([fastrnn.GRU(4, 7), fastrnn.Bidirectional(fastrnn.RNN(7, 2), fastrnn.RNN(7, 3))], [1, 2])
    assert bench.flop_count(stack, T, B) == 6 * T * B * (11 * 21 + 9 * 2 + 10 * 3)


def test_bench_json(capsys):
    assert main(["bench", "--cells", "gru", "gru-dilated-1-2-4", "--size", "4x2x3x5", "--repeat", "1",
                 "--min-time", "0.001", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gemm_gflops"]["float64"] > 0
    assert isinstance(report["blas_kernels"], str)
    rows = report["rows"]
    assert [r["cell"] for r in rows] == ["gru", "gru-dilated-1-2-4"]
    for row in rows:
        assert row["speedup"] == pytest.approx(row["reference_us"] / row["kernel_us"])
        assert 0 < row["gemm_fraction"] < 10
        assert row["gflop"] == pytest.approx(bench.flop_count(BY_NAME[row["cell"]].make(3, 5), 4, 2) / 1e9)


def test_bench_table_and_markdown(capsys):
    assert main(["bench", "--cells", "rnn-sigmoid", "--size", "3x1x2x4", "--repeat", "1", "--min-time", "0.001",
                 "--markdown", "--dtype", "both"]) == 0
    out = capsys.readouterr().out
    assert "| rnn-sigmoid | float32 | 3 | 1 | 2 | 4 |" in out and "| rnn-sigmoid | float64 |" in out
    assert "single-threaded GEMM GFLOP/s: float32" in out


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
def test_bench_threads_times_one_thread_beside(capsys):
    assert main(["bench", "--cells", "lstm", "--size", "4x2x3x5", "--repeat", "1", "--min-time", "0.001",
                 "--threads", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["numba_threads"] == 2
    (row,) = report["rows"]
    assert row["threads"] == 2 and row["scaling"] == pytest.approx(row["one_thread_us"] / row["kernel_us"])
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored afterwards


@pytest.mark.parametrize("count", ["0", "100000"])
def test_bench_rejects_thread_counts_numba_cannot_run(count, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--threads", count])
    assert "--threads" in capsys.readouterr().err


def test_bench_rejects_unknown_cells(capsys):
    assert main(["bench", "--cells", "transformer"]) == 2
    assert "unknown cell 'transformer'" in capsys.readouterr().err


def test_against_torch_times_the_fused_layer():
    pytest.importorskip("torch")
    row = bench.bench_case(BY_NAME["lstm"], (4, 2, 3, 5), repeat=1, min_time=0.001, against_torch=True)
    assert row.torch_us > 0 and row.vs_torch == pytest.approx(row.torch_us / row.kernel_us)
    none = bench.bench_case(BY_NAME["ugrnn"], (4, 2, 3, 5), repeat=1, min_time=0.001, against_torch=True)
    assert none.torch_us is None and none.vs_torch is None
    assert np.isnan(none.gemm_fraction)  # no GEMM rate measured for a single case


def test_blas_kernel_hint():
    """The bench names OpenBLAS's kernels, and says so when they leave the CPU's AVX-512 unused."""
    avx512 = ["fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
    haswell = [{"internal_api": "openblas", "architecture": "Haswell"}]
    skylake = [{"internal_api": "openblas", "architecture": "SkylakeX"}]
    assert "OPENBLAS_CORETYPE=SkylakeX" in _blas_kernels(haswell, avx512)
    assert _blas_kernels(haswell, avx512[:2]) == "OpenBLAS kernels: Haswell"
    assert _blas_kernels(skylake, avx512) == "OpenBLAS kernels: SkylakeX"
    assert _blas_kernels([{"internal_api": "mkl"}], avx512) == ""


def test_the_classic_program_is_a_real_baseline():
    """The per-sample NumPy program that ``bench --training`` times learns binary addition."""
    from fastrnn import datasets
    from fastrnn.bench_training import classic_binary_addition

    (X, Y), (Xt, Yt) = datasets.binary_addition(6000, 300, seed=0)
    w_ih, w_hh, b_h, w_out, b_out = classic_binary_addition(X, Y)
    h = np.zeros((len(Xt), 16))
    bits = []
    for t in range(Xt.shape[1]):
        h = 1 / (1 + np.exp(-(Xt[:, t] @ w_ih + h @ w_hh + b_h)))
        bits.append(1 / (1 + np.exp(-(h @ w_out + b_out))) > 0.5)
    accuracy = (np.stack(bits, axis=1) == (Yt > 0.5)).mean()
    assert accuracy > 0.95, accuracy


def test_bench_training_reports_every_backend(capsys):
    assert main(["bench", "--training", "--cells", "rnn-sigmoid", "--size", "8x1x2x16", "--repeat", "1",
                 "--min-time", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "| rnn-sigmoid | float64 | 8 | 1 | 2 | 16 |" in out
    assert "fastrnn numba" in out and "classic NumPy program" in out and "x the classic program" in out


def test_the_pytorch_twin_of_a_dilated_stack_computes_the_stack():
    """`fastrnn bench --against torch` runs PyTorch layers over the same interleaved chains; with
    the same weights (through from_torch) they give the stack's outputs, d dividing T or not."""
    torch = pytest.importorskip("torch")
    from fastrnn.registry import StackCase

    case = StackCase("twin", (("gru", 1), ("gru", 4), ("lstm", 3), ("rnn-tanh", 16)))
    T, B, I, H = 10, 3, 2, 5
    step = bench.torch_step(case, (T, B, I, H), "float64")
    x = np.random.default_rng(0).standard_normal((T, B, I))
    want = step.forward(torch.tensor(x)).detach().numpy()
    stack = fastrnn.DilatedRNN([fastrnn.from_torch(layer) for layer in step.layers], [d for _, d in case.layers])
    np.testing.assert_allclose(stack.forward(x)[0], want, rtol=1e-12, atol=1e-12)
    step()  # and its forward + backward runs
