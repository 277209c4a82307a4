"""When Numba compiles, say so; and fill its on-disk cache ahead of time.

Numba compiles a kernel the first time a process calls it with new argument types, and keeps the
machine code in an on-disk cache that later processes load in a fraction of a second. A cold
compile takes seconds per cell and dtype, so the first call that has to compile says so, through
the ``"fastrnn"`` logger (level INFO; nothing is printed unless the application configures
logging, and no warning is raised):

    fastrnn: compiling GRU float64 forward (first use; cached on disk afterwards) ...
    fastrnn: compiled GRU float64 forward in 7.9 s

``fastrnn train`` shows these lines before training starts. :func:`fastrnn.registry.compile_cells`
(the command ``fastrnn compile``) compiles every cell's kernels ahead of time, on all cores: for
a Docker image, a CI cache or a cluster's workers.
"""

import logging
import time
from pathlib import Path

import numba

from .kernels import _jit

logger = logging.getLogger("fastrnn")

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
    if types in dispatcher.overloads:  # already loaded or compiled in this process
        return dispatcher(*args)
    cached = _cached(dispatcher, types)
    if not cached:
        logger.info("compiling %s (first use; cached on disk afterwards) ...", what)
    began = time.perf_counter()
    result = dispatcher(*args)
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


def cache_directories():
    """The directories where Numba keeps fastrnn's compiled kernels."""
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
