"""Command line: ``fastrnn bench`` (also ``python -m fastrnn bench``)."""

import argparse
import json
import platform
import sys


def _size(text):
    try:
        parts = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected TxBxIxH with positive ints, e.g. 8x1x2x16, got {text!r}")
    return parts


def environment():
    """Hardware and versions to print under a speed table."""
    import numba
    import numpy
    import scipy

    return (f"{platform.processor() or platform.machine()}, {_cpu_count()} cores; Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}, Numba {numba.__version__}, "
            f"SciPy {scipy.__version__}")


def _cpu_count():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _blas_threads(n):
    """Pin every loaded BLAS (NumPy's and the one Numba calls through SciPy) to n threads.

    Returns a context manager and a line saying what was done. Without threadpoolctl (the
    ``bench`` extra) the BLAS libraries keep their own thread counts, and the line says so.
    """
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "BLAS threads: library default (install fastrnn[bench] to pin them)"
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, which the kernels call, so it is pinned too)

    return threadpool_limits(limits=n, user_api="blas"), f"BLAS threads: {n}"


def _bench(args):
    from . import bench
    from .registry import BY_NAME

    unknown = [c for c in args.cells or [] if c not in BY_NAME]
    if unknown:
        print(f"fastrnn bench: unknown cell {unknown[0]!r}; choose from {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    if not args.json:
        print("forward+backward per call, min over repeats; speedup = reference / kernel "
              "(first use compiles, or loads Numba's on-disk cache)")
        print(bench.HEADER)
    progress = None if args.json else (lambda row: print(bench.format_row(row), flush=True))
    limits, threads = _blas_threads(args.blas_threads)
    with limits:
        rows = bench.run(args.cells, args.size, dtypes, args.truncate, args.repeat, args.min_time, progress)
    if args.json:
        json.dump({"environment": environment(), "blas_threads": threads, "rows": [r.as_dict() for r in rows]},
                  sys.stdout, indent=2)
        print()
    else:
        if args.markdown:
            print()
            print(bench.format_markdown(rows))
        print(f"\n{environment()}; {threads}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastrnn", description="Numba-compiled recurrent-network kernels.")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="time kernels against their NumPy references, side by side")
    b.add_argument("--cells", nargs="+", metavar="CELL", help="registry names, e.g. rnn-tanh or gru-dilated-1-2-4 (default: all)")
    b.add_argument("--size", action="append", type=_size, metavar="TxBxIxH",
                   help="a size to time; repeat for more (default: each case's own sizes; for cells "
                        "8x1x2x16, 100x1x2x16, 100x16x64x64)")
    b.add_argument("--dtype", choices=["float64", "float32", "both"], default="float64")
    b.add_argument("--truncate", type=int, default=None, metavar="K", help="per-output horizon (default: full BPTT)")
    b.add_argument("--repeat", type=int, default=5, help="interleaved repeats; the minimum is reported")
    b.add_argument("--min-time", type=float, default=0.02, help="seconds per measurement")
    b.add_argument("--blas-threads", type=int, default=1, metavar="N",
                   help="BLAS threads for both sides (default 1: a ratio of single-threaded code)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
