"""When Numba compiles, say so; and fill its on-disk cache ahead of time.

Numba compiles a kernel the first time a process calls it with new argument types, and keeps the
machine code in an on-disk cache that later processes load in a fraction of a second. A cold
compile takes seconds per cell and dtype, so the first call that has to compile says so, through
the ``"fastrnn"`` logger (level INFO; nothing is printed unless the application configures
logging, and no warning is raised):

    fastrnn: compiling GRU float64 forward (first use; cached on disk afterwards) ...
    fastrnn: compiled GRU float64 forward in 7.9 s

``fastrnn train`` shows these lines before training starts. :func:`compile_cells` (the command
``fastrnn compile``) compiles every cell's kernels ahead of time, on all cores: for a Docker
image, a CI cache or a cluster's workers.
"""

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numba

logger = logging.getLogger("fastrnn")

# (kernel function, argument types) already loaded or compiled in this process: the check below
# runs once per pair, not per call.
_ready = set()


def _cached(dispatcher, types):
    """Whether Numba's on-disk cache holds machine code for these argument types (None: unknown)."""
    try:
        cache = dispatcher._cache
        key = cache._index_key(types, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - a private Numba API: when it changes, say less, never fail
        return None


def first_call(dispatcher, args, what):
    """Call ``dispatcher(*args)``; when that has to compile, log before and after (``what``
    names the cell, dtype and direction)."""
    if numba.config.DISABLE_JIT:  # plain Python functions: nothing to compile
        return dispatcher(*args)
    types = tuple(dispatcher.typeof_pyval(a) for a in args)
    key = (dispatcher, types)
    if key in _ready or types in dispatcher.overloads:
        _ready.add(key)
        return dispatcher(*args)
    cached = _cached(dispatcher, types)
    if not cached:
        logger.info("compiling %s (first use; cached on disk afterwards) ...", what)
    began = time.perf_counter()
    result = dispatcher(*args)
    _ready.add(key)
    seconds = time.perf_counter() - began
    if not cached:
        logger.info("compiled %s in %.1f s", what, seconds)
    else:
        logger.debug("loaded %s from Numba's cache in %.2f s", what, seconds)
    return result


class _Echo(logging.Handler):
    """Prints the ``fastrnn`` logger's INFO lines, for the command line."""

    def __init__(self, stream):
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record):
        print(f"fastrnn: {record.getMessage()}", file=self.stream, flush=True)


def echo_to(stream):
    """Print compile notices to ``stream`` (used by the command line); returns the handler."""
    handler = _Echo(stream)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _compile_module(name, dtypes):
    """In a worker process: one cell's kernels in each dtype, through the public cell and the
    optimizers, as training calls them. Returns [(name, dtype, seconds)]."""
    from . import registry  # noqa: PLC0415  (imported in the worker)

    done = []
    for dtype in dtypes:
        began = time.perf_counter()
        registry.warm(registry.BY_CELL_NAME[name], dtype)
        done.append((name, dtype, time.perf_counter() - began))
    return done


def cache_directories():
    """The directories where Numba keeps fastrnn's compiled kernels."""
    from .kernels import _jit  # noqa: PLC0415

    found = set()
    for dispatcher in _jit.KERNELS:
        path = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
        if path:
            found.add(Path(path))
    return sorted(found)


def cache_size(directories):
    """Bytes of Numba cache files (index and data) under ``directories``."""
    return sum(entry.stat().st_size for directory in directories if directory.is_dir()
               for pattern in ("*.nbi", "*.nbc") for entry in directory.glob(pattern))


def compile_cells(names, dtypes, jobs=None, report=print):
    """Compile (or load) the kernels of the named registry cells in each dtype, in worker
    processes ``jobs`` at a time (default: every core), then check here that every one loads
    from the cache. ``report(name, dtype, seconds)`` is called as each finishes; returns the
    list of those triples.

    Numba's cache is not safe to write from two processes at once: each writer rewrites a
    function's whole index and numbers its data files from what it read, so two writers of one
    function can pair one's index entry with the other's machine code. The work is therefore
    split so that no two processes write the same function: the first cell, in every dtype,
    compiles here with the pieces all cells share (the matrix product, the optimizers); then
    each other kernel module (rnn-tanh, -relu and -sigmoid share one) goes to one worker whole.
    """
    import multiprocessing  # noqa: PLC0415

    from . import registry  # noqa: PLC0415

    modules = {}
    for name in names:
        modules.setdefault(registry.BY_CELL_NAME[name].cls._module, name)
    first, *others = modules.values()
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    done = []
    for result in _compile_module(first, dtypes):
        done.append(result)
        report(*result)
    if others:
        # spawn: a fresh interpreter per worker rather than a fork of this one's LLVM state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(others))), mp_context=context) as pool:
            for results in pool.map(_compile_module, others, [dtypes] * len(others)):
                for result in results:
                    done.append(result)
                    report(*result)
    for name in names:  # loads from the cache now; compiles whatever a worker could not write
        for dtype in dtypes:
            registry.warm(registry.BY_CELL_NAME[name], dtype)
    return done
