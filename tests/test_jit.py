"""How the kernels are built: one set of options, callable from user @njit code, cached on disk."""

import os
import subprocess
import sys
import textwrap
import types

import llvmlite.binding
import numba
import numpy as np
import pytest

import fastrnn.kernels
from fastrnn.kernels import _jit
from fastrnn.reference import rnn as reference_rnn


def test_every_kernel_is_built_with_the_shared_options():
    assert len(_jit.KERNELS) >= 8
    for dispatcher in _jit.KERNELS:
        options = dispatcher.targetoptions
        assert options["nogil"] is True and options["error_model"] == "numpy", dispatcher
        assert options["no_cfunc_wrapper"] is True, dispatcher  # compiled callers call kernels directly
        # Only flags that keep IEEE NaN/inf semantics: divergence detection relies on seeing them.
        assert set(options.get("fastmath", ())) <= {"reassoc", "contract"}, dispatcher
        assert dispatcher._cache is not None and type(dispatcher._cache).__name__ == "FunctionCache", dispatcher


def test_the_product_core_is_compiled_once_per_dtype_and_called_by_symbol():
    """The matrix product's core is a C-callable function per dtype, cached on disk, that the
    products call by a symbol: the same for every caller, in both dtypes."""
    from fastrnn.kernels._driver import mm_ab

    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        a, b = rng.standard_normal((2, 20, 20)).astype(dtype)
        out = np.empty((20, 20), dtype)
        mm_ab(a, b, np.empty((0, 0, 0), dtype), out, False, 1)
        np.testing.assert_allclose(out, a @ b, rtol=1e-5 if dtype == "float32" else 1e-13, atol=1e-4)
        core = _jit.C_FUNCTIONS[f"_core_{dtype}"]
        assert type(core._cache).__name__ == "FunctionCache"
        assert llvmlite.binding.address_of_symbol(f"fastrnn_gemm_core_{dtype}") == core.address


@pytest.mark.parametrize("m, k, n", [(1, 16, 16), (8, 64, 64)])
def test_small_and_blas_products_propagate_nan_and_inf(m, k, n):
    from fastrnn.kernels._driver import mm_abt, prepare

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((n, k))
    out = np.empty((m, n))
    mm_abt(a, b, prepare(m, b.T), out, 1)
    np.testing.assert_allclose(out, a @ b.T, rtol=1e-13, atol=1e-13)
    a[0, 3] = np.nan
    a[-1, 5] = np.inf
    mm_abt(a, b, prepare(m, b.T), out, 1)
    assert np.isnan(out[0]).all()
    assert not np.isfinite(out[-1]).any()


def test_every_jitted_function_in_the_package_is_registered():
    seen = []
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("fastrnn.kernels") and isinstance(module, types.ModuleType):
            for value in vars(module).values():
                if isinstance(value, numba.core.registry.CPUDispatcher) and value.py_func.__module__ == module_name:
                    seen.append(value)
    assert seen and all(any(d is s for d in _jit.KERNELS) for s in seen)


def test_kernels_callable_from_user_njit_code():
    from fastrnn.kernels import rnn

    @numba.njit
    def user_training_step(x, h0, w_ih, w_hh, b_ih, b_hh, dy):
        y, h_n, hs = rnn.forward(x, h0, w_ih, w_hh, b_ih, b_hh, rnn.TANH)
        grads = rnn.backward(x, w_ih, w_hh, b_ih, b_hh, rnn.TANH, hs, dy, np.zeros_like(h_n), 2)
        return y, grads[1]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal((2, 4))
    w = [rng.standard_normal(s) for s in [(4, 3), (4, 4), (4,), (4,)]]
    dy = rng.standard_normal((5, 2, 4))
    y, dw_hh = user_training_step(x, h0, *w, dy)
    expected_y, _, hs = rnn.forward(x, h0, *w, rnn.TANH)
    expected = rnn.backward(x, *w, rnn.TANH, hs, dy, np.zeros((2, 4)), 2)[1]
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(dw_hh, expected)
    # ... and the tuple-returning forms agree with the oracle, not only with themselves.
    ref_y, _, ref_hs = reference_rnn.forward(x, h0, *w, reference_rnn.TANH)
    ref_dw_hh = reference_rnn.backward(x, *w, reference_rnn.TANH, ref_hs, dy, np.zeros((2, 4)), 2)[1]
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw_hh, ref_dw_hh, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_compiled_callers_call_a_kernel_by_its_symbol_rather_than_linking_its_code():
    """A compiled function calling a kernel declares the kernel's symbol and carries none of its
    code (linked code is optimised and emitted again in every caller), and gets its results."""
    from fastrnn.kernels import rnn

    @numba.njit
    def user_forward(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, hs):
        rnn.forward_into(x, h0, w_ih, w_hh, b_ih, b_hh, rnn.TANH, y, h_n, hs)

    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4))
    w = [rng.standard_normal(s) for s in [(4, 3), (4, 4), (4,), (4,)]]
    outputs = [np.empty((5, 2, 4)), np.empty((2, 4)), np.empty((6, 2, 4))]
    user_forward(x, h0, *w, *outputs)
    expected = rnn.forward(x, h0, *w, rnn.TANH)
    for got, want in zip(outputs, expected):
        np.testing.assert_array_equal(got, want)
    [ir] = user_forward.inspect_llvm().values()
    args = tuple(numba.typeof(a) for a in (x, h0, *w, rnn.TANH, *outputs))
    symbol = _jit._symbol(rnn.forward_into.py_func, args)
    assert f"declare i32 @{symbol}(" in ir
    assert not any(line.startswith("define") and "forward_into" in line for line in ir.splitlines())


def _branchy(x):
    """Many blocks and variables, as the recurrences have."""
    total = 0.0
    for i in range(x.shape[0]):
        if x[i] > 0:
            total += x[i]
        elif x[i] < -1:
            total -= 2 * x[i]
        else:
            total += 0.5
    return total


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
@pytest.mark.parametrize("module, shared", [("fastrnn.kernels.probe", True), ("elsewhere", False)])
def test_inlining_a_fastrnn_function_copies_its_scope_once_per_copy(monkeypatch, module, shared):
    """Numba's inliner copies the callee's IR block by block; for fastrnn's own functions the
    blocks' copies share one memo, so the scope (every variable) is copied once per copy of the IR
    rather than once per block. Other packages' functions are inlined as Numba does it. The
    inlined code computes the same either way."""
    import copy

    from numba.core import ir

    copies = []

    def counting_deepcopy(self, memo):
        if self.parent is not None:  # the function's scope, not the global one above it
            copies.append(self)
        new = ir.Scope.__new__(ir.Scope)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    function = types.FunctionType(_branchy.__code__, _branchy.__globals__, "_branchy")
    function.__module__ = module
    callee = numba.njit(inline="always")(function)

    @numba.njit
    def caller(x):
        return callee(x) + 1.0

    monkeypatch.setattr(ir.Scope, "__deepcopy__", counting_deepcopy, raising=False)
    x = np.array([1.5, -3.0, 0.25, -0.5])
    assert caller(x) == _branchy(x) + 1.0
    if shared:  # the IR spliced in, and the copy the inliner keeps unchanged
        assert len(copies) == 2
    else:
        assert len(copies) > 4


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_the_gated_backward_steps_are_kernels_whose_arrays_are_unaliased():
    """The gated cells' backward steps are kernels of their own compiled with Numba's noalias flag,
    which marks their array arguments noalias for LLVM (what lets their loops vectorise without an
    overlap check at every batch row); the RNN's stays inlined, and other kernels are unflagged."""
    from fastrnn.kernels import lstm, steps

    rng = np.random.default_rng(0)
    T, B, I, H = 3, 2, 3, 4
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w = [rng.standard_normal(s) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    y, h_n, c_n, hs, cs, cache = lstm.forward(x, h0, c0, *w)
    lstm.backward(x, *w, hs, cs, cache, np.ones_like(y), np.zeros_like(h_n), np.zeros_like(c_n), -1)
    assert steps.BACKWARD_STEPS[steps.RNN] is steps.rnn.backward
    step = steps.BACKWARD_STEPS[steps.LSTM]
    assert step is not steps.lstm.backward and step in _jit.KERNELS
    # Compiled here or loaded from the cache, an overload keeps its function descriptor.
    assert step.overloads and all(result.fndesc.noalias for result in step.overloads.values())
    assert lstm.backward_into.overloads and not any(result.fndesc.noalias
                                                    for result in lstm.backward_into.overloads.values())


USER_MODULE = textwrap.dedent("""
    import numba
    from fastrnn.kernels import rnn

    @numba.njit(cache=True)
    def user_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
        return rnn.forward(x, h0, w_ih, w_hh, b_ih, b_hh, rnn.TANH)[0]
""")

USER_RUN = textwrap.dedent("""
    import numpy as np
    import user_kernels
    from fastrnn.kernels import rnn
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4))
    w = [rng.standard_normal(s) for s in [(4, 3), (4, 4), (4,), (4,)]]
    y = user_kernels.user_forward(x, h0, *w)
    assert np.array_equal(y, rnn.forward(x, h0, *w, rnn.TANH)[0])
    print("HITS", sum(user_kernels.user_forward.stats.cache_hits.values()))
""")


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_user_code_cached_with_a_kernel_call_loads_in_a_fresh_process(tmp_path):
    """Your own ``@njit(cache=True)`` function calling a kernel is cached calling it by symbol; a
    fresh process loading it from the cache loads the kernel (and what it calls) first."""
    (tmp_path / "user_kernels.py").write_text(USER_MODULE)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    runs = [subprocess.run([sys.executable, "-c", USER_RUN], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert "HITS 0" in runs[0].stdout and "HITS 1" in runs[1].stdout, [run.stdout for run in runs]


FRESH_PROCESS = textwrap.dedent("""
    import fastrnn, numpy as np
    from fastrnn.kernels import _jit
    from fastrnn.registry import CASES, train_step
    for case in CASES:
        for dtype in ("float64", "float32"):
            for k in (None, 1):
                train_step(case.make(2, 3, dtype=dtype), 4, 1, truncate=k)()
    misses = [d.py_func.__qualname__ for d in _jit.KERNELS if d.stats.cache_misses]
    misses += [name for name, function in _jit.C_FUNCTIONS.items() if not function._cache_hits]
    print("MISSES", misses, sorted(_jit.C_FUNCTIONS))
""")


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_fresh_process_loads_every_kernel_from_the_cache():
    env = dict(os.environ)
    run = [sys.executable, "-c", FRESH_PROCESS]
    subprocess.run(run, check=True, capture_output=True, env=env)  # warm (may compile)
    out = subprocess.run(run, check=True, capture_output=True, text=True, env=env).stdout
    assert "MISSES [] ['_core_float32', '_core_float64']" in out, out


PURE_PYTHON = textwrap.dedent("""
    import sys
    import numpy as np
    import fastrnn
    from fastrnn.registry import CASES, STACKS, make_inputs

    out = {}
    # (T, B, I, H): one shape on the small-product loops, one on the tiled product's tiles
    # (its micro-kernel is an intrinsic, run here by its NumPy stand-in).
    for case in CASES + STACKS:
        for T, B, I, H in ((3, 2, 2, 3), (4, 9, 5, 16)):
            for dtype in ("float64", "float32"):
                core = case.make(I, H, dtype=dtype, seed=0)
                inputs = make_inputs(core, T, B, seed=1)
                y, state, tape = core.forward(inputs["x"])
                grads, dx, _ = core.backward(tape, inputs["dy"], truncate=1)
                key = f"{case.name}/{T}x{B}x{I}x{H}/{dtype}"
                out[key + "/y"], out[key + "/dx"] = y, dx
                out.update({f"{key}/{name}": g for name, g in grads.items()})
    model = fastrnn.Model(fastrnn.LSTM(2, 3, seed=0), 2, seed=0)
    rng = np.random.default_rng(0)
    history = model.fit(rng.standard_normal((8, 6, 2)), rng.integers(0, 2, (8, 6)), epochs=2, batch_size=4,
                        tbptt=3, progress=False)
    out["fit/loss"] = np.array(history["loss"])
    np.savez(sys.argv[1], **out)
""")


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_pure_python_mode_gives_the_compiled_results(tmp_path):
    """``NUMBA_DISABLE_JIT=1`` (for debugging and coverage) runs every kernel, the tiled product
    and a fit as plain Python, with the compiled results up to summation order."""
    path = tmp_path / "pure.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", PURE_PYTHON, str(path)], check=True, env=env, timeout=600)
    subprocess.run([sys.executable, "-c", PURE_PYTHON, str(tmp_path / "jit.npz")], check=True, timeout=600)
    with np.load(path) as pure, np.load(tmp_path / "jit.npz") as jit:
        assert pure.files == jit.files and len(pure.files) > 100
        for key in jit.files:
            dtype = jit[key].dtype
            rtol = 1e-10 if dtype == np.float64 else 2e-4
            np.testing.assert_allclose(pure[key], jit[key], rtol=rtol, atol=rtol, err_msg=key)


class _FakeCache:
    def __init__(self, path):
        self._cache_path = str(path)


class _FakeDispatcher:
    def __init__(self, path):
        self._cache = _FakeCache(path)


def test_stale_cache_is_dropped_when_kernel_sources_change(tmp_path, monkeypatch):
    stale = tmp_path / "cell.forward-10.py311.nbi"
    stale.write_text("old")
    (tmp_path / "cell.forward-10.py311.1.nbc").write_text("old")
    unrelated = tmp_path / "module.cpython-311.pyc"
    unrelated.write_text("keep")
    monkeypatch.setattr(_jit, "KERNELS", [_FakeDispatcher(tmp_path)])
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)
    _jit.invalidate_stale_cache()
    assert not stale.exists() and unrelated.exists()
    assert (tmp_path / "fastrnn-kernels.sha256").read_text() == _jit.source_digest()
    # Same sources: the cache written since is kept.
    stale.write_text("fresh")
    _jit.invalidate_stale_cache()
    assert stale.exists()
    # Changed sources: dropped again.
    (tmp_path / "fastrnn-kernels.sha256").write_text("digest of other sources")
    _jit.invalidate_stale_cache()
    assert not stale.exists()


def test_kernels_package_lists_its_modules():
    assert "rnn" in fastrnn.kernels.__all__


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="runs in CI's NUMBA_BOUNDSCHECK=1 pass")
def test_bounds_checks_catch_an_out_of_bounds_kernel_call():
    """Under NUMBA_BOUNDSCHECK=1 (set by .ci/run for a subset of the kernel tests) a kernel handed a
    gradient shorter than its parameter, which the public optimizers refuse, raises IndexError
    instead of reading past the array's end."""
    from fastrnn.kernels import optim

    param, velocity = np.ones(8), np.zeros(8)
    with pytest.raises(IndexError):
        optim.sgd(param, np.ones(3), velocity, 0.1, 0.0, True)


COLD_THEN_WARM = textwrap.dedent("""
    import logging, sys
    import numpy as np
    import fastrnn
    from fastrnn.kernels import _jit
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    cell = fastrnn.RNN(2, 3, seed=0)
    y, _, tape = cell.forward(np.ones((4, 2, 2)))
    grads, _, _ = cell.backward(tape, np.ones_like(y))
    fastrnn.SGD(0.1).step(cell.params, grads)
    print("MISSES", [d.py_func.__qualname__ for d in _jit.KERNELS if d.stats.cache_misses])
""")


LARGE_ON_TWO_THREADS = textwrap.dedent("""
    import logging, sys
    import numba, numpy as np
    import fastrnn, fastrnn._threads
    from fastrnn.kernels import _jit
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    cell = fastrnn.RNN(2, 128, seed=0)
    print(cell._kernel("forward", 16)[1], fastrnn._threads.threading_layer())
    y, _, tape = cell.forward(np.ones((3, 16, 2)))
    cell.backward(tape, np.ones_like(y))
    print("MISSES", [d.py_func.__qualname__ for d in _jit.KERNELS if d.stats.cache_misses])
""")


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_compiling_is_announced_and_fastrnn_compile_fills_the_cache(tmp_path):
    """With an empty cache the first call says it compiles (through logging, no warning);
    ``fastrnn train`` says so before training; ``fastrnn compile`` reports where the cache is;
    a later process then compiles nothing and says nothing."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONWARNINGS": "error"}
    cold = subprocess.run([sys.executable, "-c", COLD_THEN_WARM], env=env, capture_output=True, text=True,
                          check=True, timeout=600).stdout
    assert "fastrnn: compiling RNN float64 forward (first use; cached on disk afterwards) ..." in cold, cold
    assert "fastrnn: compiled RNN float64 backward in" in cold, cold
    train = subprocess.run([sys.executable, "-m", "fastrnn", "train", "binary-addition", "--epochs", "1",
                            "--no-progress", "--cell", "gru"], env=env, capture_output=True, text=True,
                           check=True, timeout=600).stdout
    notice = train.index("fastrnn: compiling GRU float64 training loop (first use; cached on disk afterwards)")
    assert notice < train.index("final:"), train
    compiled = subprocess.run([sys.executable, "-m", "fastrnn", "compile", "--cells", "rnn-tanh", "--dtype",
                               "float64", "--threaded"], env=env, capture_output=True, text=True, check=True,
                              timeout=600).stdout
    assert "rnn-tanh float64:" in compiled and "Numba's cache:" in compiled, compiled
    assert "and their threaded twins" in compiled and str(tmp_path / "cache") in compiled, compiled
    warm = subprocess.run([sys.executable, "-c", COLD_THEN_WARM], env=env, capture_output=True, text=True,
                          check=True, timeout=600).stdout
    assert "compiling" not in warm and "MISSES []" in warm, warm
    # --threaded also filled the cache with the threaded twins that large calls on two threads take.
    large = subprocess.run([sys.executable, "-c", LARGE_ON_TWO_THREADS], env=env, capture_output=True, text=True,
                           check=True, timeout=600).stdout
    assert "forward threaded" in large or numba.config.NUMBA_NUM_THREADS < 2 or "workqueue" in large, large
    assert "compiling" not in large and "MISSES []" in large, large


LINKING_STEPS = {
    "the products": textwrap.dedent("""
        import numpy as np
        from fastrnn.kernels._driver import mm_ab, mm_atb
        a, out = np.ones((40, 40)), np.empty((40, 40))
        mm_ab(a, a, np.empty((0, 0, 0)), out, False, 1)
        mm_atb(a, a, np.empty(40 * 48), out, False)
    """),
    "a kernel calling them": textwrap.dedent("""
        import numpy as np
        from fastrnn.kernels._driver import _flush_block
        a, none, dw_ih, dw_hh, dx = np.ones((40, 40)), np.empty((0, 0, 0)), *np.zeros((3, 40, 40))
        _flush_block(a, a, a, a, a, none, True, np.empty(40 * 48), dw_ih, dw_hh, dx, False)
        assert (dw_ih == 40.0).all() and (dx == 40.0).all()
    """),
}


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="JIT disabled")
def test_a_kernel_compiled_against_cached_products_loads_alone(tmp_path):
    """Process 1 compiles the products; process 2 compiles a kernel that links them, loaded from
    the cache; process 3 loads that kernel alone, and its reload hooks must load the product's
    core first (without them it called an undefined symbol and crashed)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    for step in ("the products", "a kernel calling them", "a kernel calling them"):
        run = subprocess.run([sys.executable, "-c", LINKING_STEPS[step]], env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, (step, run.returncode, run.stderr[-2000:])
    # The kernel loaded from the cache while the products it calls by symbol are compiled anew (another
    # process is still writing them, or their entries were lost): their symbols must be found all the same.
    dropped = [path for path in tmp_path.rglob("_driver.mm_*") if path.suffix in (".nbi", ".nbc")]
    assert dropped
    for path in dropped:
        path.unlink()
    run = subprocess.run([sys.executable, "-c", LINKING_STEPS["a kernel calling them"]], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
