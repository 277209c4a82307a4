"""What this machine and this process are, for speed tables and bug reports (``fastrnn info``).

The command line, ``fastrnn bench`` and the asv suite all take their environment lines and their
BLAS pinning from here.
"""

import contextlib
import os
import platform

import numba

from ._threads import threading_layer


def environment():
    """Hardware and versions to print under a speed table."""
    import numpy
    import scipy

    return (f"{cpu_name()} ({platform.machine()}), {cpu_count()} cores; Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}, Numba {numba.__version__}, "
            f"SciPy {scipy.__version__}")


def cpu_count():
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def blas_threads(n):
    """Pin every loaded BLAS (NumPy's and the one Numba calls through SciPy) to n threads.

    Returns a context manager and a line saying what was done. Without threadpoolctl (the
    ``bench`` extra) the BLAS libraries keep their own thread counts, and the line says so.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "BLAS threads: library default (install fastrnn[bench] to pin them)"
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, which the kernels call, so it is pinned too)

    return threadpool_limits(limits=n, user_api="blas"), f"BLAS threads: {n}"


def blas_kernels(info=None, cpu_flags=None):
    """Which kernel family each OpenBLAS runs, with a hint when it leaves AVX-512 unused.

    OpenBLAS chooses its kernels by CPU family and model. One it does not know gets a fallback:
    OpenBLAS 0.3.31 gives AMD's family 26 (Zen 5) its Haswell (AVX2) kernels although the CPU
    has AVX-512 (OpenBLAS issue #6029), and GEMMs then run at about half speed (measured on this
    project's machine: float64 56 against 90 GFLOP/s, float32 117 against 218). The environment
    variable OPENBLAS_CORETYPE, read when the library loads, overrides the choice. fastrnn's
    kernels multiply with their own tiled product (:mod:`fastrnn.kernels._gemm`), so the hint
    concerns NumPy's products: the references', the model's head, the user's own code.
    ``info`` (threadpoolctl's) and ``cpu_flags`` default to this process's and this machine's.
    Returns "" when there is nothing to say.
    """
    if info is None:
        try:
            from threadpoolctl import threadpool_info
        except ImportError:
            return ""
        info = threadpool_info()
    kinds = sorted({lib.get("architecture") or "?" for lib in info if lib.get("internal_api") == "openblas"})
    if not kinds:
        return ""
    if cpu_flags is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpu_flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        except OSError:
            cpu_flags = []
    line = f"OpenBLAS kernels: {', '.join(kinds)}"
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"} <= set(cpu_flags)
    if avx512 and not any(k.lower() in ("skylakex", "cooperlake", "sapphirerapids") for k in kinds):
        line += (" on a CPU with AVX-512, which they leave unused: setting OPENBLAS_CORETYPE=SkylakeX "
                 "before starting Python may run NumPy's matrix products (the references' among them) up to "
                 "2x faster; fastrnn's kernels use their own")
    return line


def cpu_name():
    """The CPU's model name as the kernel reports it, or the platform's word for it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report():
    """The lines ``fastrnn info`` prints: what a bug report needs."""
    import llvmlite
    import numpy
    import scipy
    from llvmlite import binding as llvm

    from . import __version__, compilation
    from .kernels import _gemm

    target = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    lanes = _gemm.VECTOR_BYTES // 8
    lines = [
        f"fastrnn {__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}",
        f"NumPy {numpy.__version__}, Numba {numba.__version__}, llvmlite {llvmlite.__version__} "
        f"(LLVM {'.'.join(map(str, llvm.llvm_version_info))}), SciPy {scipy.__version__}",
        f"CPU: {cpu_name()}; {cpu_count()} cores available to this process",
        f"kernels compiled for: {target}, {_gemm.VECTOR_BYTES}-byte vectors "
        f"({'AVX-512' if _gemm.VECTOR_BYTES == 64 else 'AVX2 or narrower'}); "
        f"product tiles {_gemm.MR}x{_gemm.VECTORS * lanes} "
        f"in float64, {_gemm.MR}x{2 * _gemm.VECTORS * lanes} in float32",
        f"Numba threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}; "
        f"threading layer: {threading_layer()}); "
        f"JIT {'disabled (NUMBA_DISABLE_JIT=1)' if numba.config.DISABLE_JIT else 'enabled'}",
    ]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("BLAS (NumPy's, which the references use): install fastrnn[bench] (threadpoolctl) to see which")
    else:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS too)

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                lines.append(f"BLAS: {lib.get('internal_api')} {lib.get('version')}, {lib.get('architecture') or '?'} "
                             f"kernels, {lib.get('num_threads')} threads ({os.path.basename(lib.get('filepath', ''))})")
        hint = blas_kernels()
        if "OPENBLAS_CORETYPE" in hint:
            lines.append(hint)
    directories = compilation.cache_directories()
    size = compilation.cache_size(directories)
    where = ", ".join(map(str, directories)) or "none (JIT disabled or no cache)"
    lines.append(f"Numba cache: {size / 2**20:.1f} MiB in {where}"
                 + (f" (NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']})" if os.environ.get("NUMBA_CACHE_DIR") else ""))
    return lines
