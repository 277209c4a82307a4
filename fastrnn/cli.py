"""Command line: ``fastrnn train TASK`` and ``fastrnn bench`` (also as ``python -m fastrnn ...``)."""

import argparse
import json
import sys

from ._threads import numba_threads, threading_layer
from .system import blas_kernels as _blas_kernels
from .system import blas_threads as _blas_threads
from .system import environment


def _size(text):
    try:
        parts = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected TxBxIxH with positive ints, e.g. 8x1x2x16, got {text!r}")
    return parts


def _number(convert, accept, expected):
    """An argparse type: ``convert(text)`` where ``accept`` holds it, else an error saying what was
    expected (argparse adds the option's name)."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive = _number(int, lambda n: n >= 1, "a positive int")


def _threads(text):
    """A thread count Numba can run: 1 ... NUMBA_NUM_THREADS (the cores, unless set lower)."""
    import numba  # noqa: PLC0415  (the CLI imports its heavy modules per command)

    n = _positive(text)
    if n > numba.config.NUMBA_NUM_THREADS:
        raise argparse.ArgumentTypeError(f"at most NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS} threads, "
                                         f"got {n}")
    return n
_non_negative = _number(int, lambda n: n >= 0, "an int >= 0")
_positive_seconds = _number(float, lambda s: 0 < s < float("inf"), "a number of seconds > 0")


def _plot_path(text):
    """argparse type for --plot: a path whose directory exists, with an image suffix (.png if none)."""
    import os

    path = text if os.path.splitext(text)[1] else text + ".png"
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise argparse.ArgumentTypeError(f"expected a .png, .pdf, .svg or .jpg file, got {text!r}")
    from .io import check_writable

    try:
        return check_writable("--plot", path)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--plot: ")) from None


def _bench_training(args):
    from . import bench_training
    from .registry import BY_CELL_NAME

    names = args.cells or list(bench_training.CELLS)
    unknown = [c for c in names if c not in BY_CELL_NAME]
    if unknown:
        print(f"fastrnn bench --training: unknown cell {unknown[0]!r}; choose from {', '.join(BY_CELL_NAME)}",
              file=sys.stderr)
        return 2
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
    limits, threads = _blas_threads(args.blas_threads)
    print("one training update of a batch (forward, head, sigmoid cross-entropy, backward, Adam), min over "
          "interleaved repeats; PyTorch: nn.RNN/GRU/LSTM + nn.Linear + BCEWithLogitsLoss + Adam (its tanh RNN for "
          "the sigmoid one)", flush=True)
    with limits, numba_threads(args.threads):
        rows = [bench_training.bench_training(name, size, dtype, args.repeat, args.min_time)
                for name in names for dtype in dtypes for size in (args.size or bench_training.SIZES)]
        print()
        print(bench_training.format_markdown(rows))
        batch_one = bench_training.batch_one()
    classic = batch_one["classic NumPy program"]
    print("\nbinary addition, SGD updates of batch 1 (T=8, I=2, H=16), µs per update: "
          + ", ".join(f"{name} {seconds * 1e6:.1f}" for name, seconds in batch_one.items())
          + f"; fastrnn numba is {batch_one['fastrnn numpy'] / batch_one['fastrnn numba']:.1f}x the numpy backend "
            f"and {classic / batch_one['fastrnn numba']:.1f}x the classic program")
    print(f"\n{environment()}; {threads}; Numba threads: {args.threads}"
          + (f"; PyTorch {torch.__version__}, {args.threads} thread(s)" if torch is not None else ""))
    return 0


def _bench(args):
    from . import bench
    from .registry import BY_NAME

    if args.training:
        return _bench_training(args)

    unknown = [c for c in args.cells or [] if c not in BY_NAME]
    if unknown:
        print(f"fastrnn bench: unknown cell {unknown[0]!r}; choose from {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    if args.against == "torch":
        try:
            import torch
        except ImportError:
            print("fastrnn bench: --against torch needs PyTorch (pip install torch==2.13.0, the CPU build)",
                  file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if not args.json:
        print("forward+backward per call, min over repeats; speedup = reference / kernel; of GEMM = kernel "
              "GFLOP/s over the single-threaded GFLOP/s of the kernels' own matrix product (512x512 matrices); "
              "vs torch = PyTorch fused layer / kernel (first use compiles, or loads Numba's on-disk cache)")
        print(bench.HEADER)
    progress = None if args.json else (lambda row: print(bench.format_row(row), flush=True))
    limits, threads = _blas_threads(args.blas_threads)
    with limits:
        rows = bench.run(args.cells, args.size, dtypes, args.truncate, args.repeat, args.min_time, progress,
                         against_torch=args.against == "torch", threads=args.threads)
    if args.json:
        gemm = {row.dtype: row.gemm_gflops for row in rows}
        json.dump({"environment": environment(), "blas_threads": threads, "numba_threads": args.threads,
                   "blas_kernels": _blas_kernels(),
                   "gemm_gflops": gemm,
                   "rows": [r.as_dict() for r in rows]}, sys.stdout, indent=2)
        print()
    else:
        if args.markdown:
            print()
            print(bench.format_markdown(rows))
        gemm = ", ".join(f"{dtype} {rate:.0f}" for dtype, rate in {r.dtype: r.gemm_gflops for r in rows}.items())
        print(f"\n{environment()}; {threads}; Numba threads for the kernels: {args.threads}"
              f" ({threading_layer()} layer); the kernels' single-threaded GEMM GFLOP/s: {gemm}"
              + (f"; PyTorch {__import__('torch').__version__}, {args.threads} thread(s)"
                 if args.against == "torch" else ""))
        kernels = _blas_kernels()
        if kernels:
            print(kernels)
    return 0


def _train(args):
    import copy
    import time

    from . import bench_training
    from .tasks import _MNIST, TASKS, Copy, PixelMNIST

    task = copy.copy(TASKS[args.task])  # options such as --text set this run's copy only
    if args.plot:
        _matplotlib()  # before training: a missing extra must not cost the run
    if args.text is not None:
        if args.task != "text":
            print("fastrnn train: --text applies to the text task only", file=sys.stderr)
            return 2
        task.path = args.text
    for option, value, applies in (("--mnist", args.mnist, isinstance(task, _MNIST)),
                                   ("--permute", args.permute, isinstance(task, PixelMNIST))):
        if value and not applies:
            names = [n for n, t in TASKS.items() if isinstance(t, PixelMNIST if option == "--permute" else _MNIST)]
            print(f"fastrnn train: {option} applies to {' and '.join(names)} only", file=sys.stderr)
            return 2
    if isinstance(task, Copy):
        return _copy(task, args)
    for option, value in (("--synthetic-gradients", args.synthetic_gradients), ("--updates", args.updates)):
        if value:
            print(f"fastrnn train: {option} applies to the copy task only", file=sys.stderr)
            return 2
    if args.mnist is not None:
        task.path = args.mnist
    if args.permute:
        task.permute = True
    try:
        train, test = task.data("full", seed=args.seed)
        model = task.model(args.cell, args.hidden, args.backend, args.seed, input_size=train[0].shape[2])
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"fastrnn train: {error}", file=sys.stderr)
        return 2
    if args.compare:
        return _compare(task, args)
    options = task.fit_kwargs()
    if args.batch_size:
        options["batch_size"] = args.batch_size
    if args.tbptt:
        options["tbptt"] = args.tbptt
    epochs = args.epochs or task.epochs
    print(f"{task.name}: {task.description}")
    print(f"model: {model!r}")
    print(f"data: {len(train[0])} training and {len(test[0])} test sequences of {train[0].shape[1]} steps; "
          f"{epochs} epochs, {options}")
    if args.backend == "numba":
        # Compile (or load) the kernels before training, saying so, so that the progress bar and
        # the timing start on compiled code.
        from . import compilation
        from .parallel import warm_up

        handler = compilation.echo_to(sys.stdout)
        try:
            warm_up(model, *train, options)
        finally:
            compilation.logger.removeHandler(handler)
    with _cluster(args) as client:
        if client is not None:
            workers = len(client.scheduler_info()["workers"])
            options.update(executor=client, shards=workers)
            print(f"data-parallel: each batch split across {workers} Dask workers at {client.scheduler.address}")
        began = time.perf_counter()
        history = model.fit(*train, epochs=epochs, validation=test, progress=args.progress, **options)
        wall = time.perf_counter() - began
    options.pop("executor", None)
    options.pop("shards", None)
    last = {key: values[-1] for key, values in history.items()}
    print("final: " + ", ".join(f"{key} {value:.4g}" for key, value in last.items()))
    report = task.report(model, train, test)
    if report["target"] is None:
        print(f"{report['metric']}: {report['value']:.4g} (no target: compare with plain TBPTT by --compare N)")
    else:
        verdict = "reached" if report["reached"] else "NOT reached"
        relation = ">=" if task.higher_is_better else "<"
        print(f"{report['metric']}: {report['value']:.4g} (target {relation} {report['target']:.4g}: {verdict})")
    print(f"wall time: {wall:.2f} s for {epochs} epochs on the {args.backend} backend "
          f"(Numba compiles each kernel on first use, or loads its on-disk cache)")

    # The same training step on both backends, side by side in this process.
    batch = options["batch_size"]
    (numba_s, numpy_s), threads = bench_training.task_step_times(task, train[0][:batch], train[1][:batch],
                                                                 cell=args.cell, hidden=args.hidden, seed=args.seed)
    print(f"training step (batch {batch}, forward + backward + update): numba {numba_s * 1e3:.3g} ms, "
          f"NumPy reference {numpy_s * 1e3:.3g} ms: {numpy_s / numba_s:.1f}x ({threads})")
    if args.plot:
        _plot(history, args.plot, task.name)
        print(f"learning curves written to {args.plot}")
    return 0


def _compile(args):
    import time

    from . import compilation
    from .registry import BY_CELL_NAME, compile_cells

    names = args.cells or list(BY_CELL_NAME)
    unknown = [c for c in names if c not in BY_CELL_NAME]
    if unknown:
        print(f"fastrnn compile: unknown cell {unknown[0]!r}; choose from {', '.join(BY_CELL_NAME)}", file=sys.stderr)
        return 2
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    what = " and their threaded twins" if args.threaded else ""
    print(f"compiling {', '.join(names)}{what} in {', '.join(dtypes)} (or loading them from Numba's cache)",
          flush=True)
    began = time.perf_counter()
    compile_cells(names, dtypes, jobs=args.jobs, threaded=args.threaded,
                              report=lambda name, dtype, seconds: print(f"  {name} {dtype}: {seconds:.1f} s",
                                                                        flush=True))
    directories = compilation.cache_directories()
    size = compilation.cache_size(directories)
    print(f"done in {time.perf_counter() - began:.1f} s; Numba's cache: {size / 2**20:.1f} MiB in "
          f"{', '.join(map(str, directories))}")
    return 0


def _cluster(args):
    """A Dask client for --workers N (a local cluster of N processes) or --scheduler ADDRESS."""
    import contextlib

    if not args.workers and not args.scheduler:
        return contextlib.nullcontext(None)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SystemExit("fastrnn train: --workers and --scheduler need Dask: pip install 'fastrnn[dask]'") from None
    stack = contextlib.ExitStack()
    if args.scheduler:
        client = stack.enter_context(Client(args.scheduler))
    else:
        # ":0": the scheduler's HTTP endpoint on a free port (None still binds 8787, which a second
        # cluster on the machine then fails on); without bokeh installed it serves no dashboard.
        cluster = stack.enter_context(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0"))
        client = stack.enter_context(Client(cluster))

    @contextlib.contextmanager
    def managed():
        with stack:
            yield client

    return managed()


def _copy(task, args):
    """The copy task's curriculum: one run, or with --compare N the table of TBPTT(K) against
    synthetic gradients(K) over the truncations of Jaderberg et al.'s Table 1 and N seeds."""
    import time

    from .tasks import COPY_TRUNCATIONS

    hidden = args.hidden or task.hidden
    updates = args.updates or 20_000
    if args.synthetic_gradients and not args.tbptt:
        print("fastrnn train: --synthetic-gradients needs --tbptt K (synthetic gradients join TBPTT windows)",
              file=sys.stderr)
        return 2
    print(f"{task.name}: {task.description}")
    print(f"model: {task.model(args.cell, hidden, args.backend, args.seed)!r}; batches of {task.batch}, "
          f"{task.fit_kwargs()['optimizer']!r}; the length grows once the bits error is below {task.threshold} "
          f"wrong bits per output step (measured every {task.per_stage} updates); budget {updates} updates")
    if not args.compare:
        began = time.perf_counter()
        label = (f"synthetic gradients({args.tbptt})" if args.synthetic_gradients else
                 f"TBPTT({args.tbptt})" if args.tbptt else "full BPTT")

        def report(length, updates):
            print(f"  length {length} solved after {updates} updates ({time.perf_counter() - began:.1f} s)",
                  flush=True)

        result = task.curriculum(args.tbptt, args.synthetic_gradients, updates=updates, seed=args.seed,
                                 cell=args.cell, hidden=hidden, backend=args.backend, report=report)
        print(f"{label}: longest length solved {result['longest']} in {result['updates']} updates "
              f"(last bits error {result['error']:.2f}, at length {result['at']}); "
              f"wall time {time.perf_counter() - began:.1f} s")
        return 0
    truncations = (args.tbptt,) if args.tbptt else COPY_TRUNCATIONS

    def longest(K, synthetic):
        """Each seed's longest length solved, and their mean, as a table cell."""
        runs = [task.curriculum(K, synthetic, updates=updates, seed=seed, cell=args.cell, hidden=hidden,
                                backend=args.backend)["longest"] for seed in range(args.compare)]
        return f"{', '.join(map(str, runs))} ({sum(runs) / len(runs):.1f})"

    print(f"longest length solved, seeds 0..{args.compare - 1} (and their mean)")
    print("| K | TBPTT(K) | synthetic gradients(K) |")
    print("|---:|---|---|")
    for K in truncations:
        print(f"| {K} | {longest(K, False)} | {longest(K, True)} |", flush=True)
    print(f"| full BPTT | {longest(None, False)} | |")
    return 0


def _compare(task, args):
    from .tasks import compare

    if "synthetic_gradients" not in task.fit_options:
        print(f"fastrnn train: --compare needs a synthetic-gradient task (digits01-sg, recall-sg), not {task.name}",
              file=sys.stderr)
        return 2
    K = task.fit_options["tbptt"]
    print(f"{task.name}: {task.description}")
    print(f"final (and best) test accuracy over {args.epochs or task.epochs} epochs, plain TBPTT({K}) against "
          f"synthetic gradients, seeds 0..{args.compare - 1}")
    print(f"| seed | TBPTT({K}) | synthetic gradients |")
    print("|---:|---:|---:|")
    rows = compare(task, range(args.compare), backend=args.backend, epochs=args.epochs)
    for row in rows:
        print(f"| {row['seed']} | {row['tbptt']:.3f} ({row['tbptt_best']:.3f}) | {row['sg']:.3f} "
              f"({row['sg_best']:.3f}) |")
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in ("tbptt", "tbptt_best", "sg", "sg_best")}
    print(f"| mean | {mean['tbptt']:.3f} ({mean['tbptt_best']:.3f}) | {mean['sg']:.3f} ({mean['sg_best']:.3f}) |")
    return 0


def _matplotlib():
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise SystemExit("fastrnn train --plot needs matplotlib: pip install 'fastrnn[examples]'") from None
    return plt


def _plot(history, path, title):
    """The loss per epoch and, for a classification task, the accuracy beside it."""
    plt = _matplotlib()
    panels = [("loss", "loss")] + ([("accuracy", "accuracy")] if "accuracy" in history else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    epochs = range(1, len(history["loss"]) + 1)
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(epochs, history[key], label=f"training {label}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label=f"test {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    axes[0][0].set_yscale("log")
    fig.suptitle(f"fastrnn train {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    from . import __version__

    parser = argparse.ArgumentParser(prog="fastrnn", description="Numba-compiled recurrent-network kernels.")
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    from .registry import BY_CELL_NAME
    from .tasks import TASKS

    t = commands.add_parser("train", help="train a built-in task; report its metrics and speed against the reference")
    t.add_argument("task", choices=list(TASKS), help="; ".join(f"{n}: {task.description}" for n, task in TASKS.items()))
    t.add_argument("--cell", choices=list(BY_CELL_NAME), help="the recurrent cell (default: the task's own)")
    t.add_argument("--hidden", type=_positive, metavar="H", help="hidden size (default: the task's own)")
    t.add_argument("--epochs", type=_positive, help="passes over the training data (default: the task's own)")
    t.add_argument("--batch-size", type=_positive, help="sequences per update (default: the task's own)")
    t.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    t.add_argument("--seed", type=_non_negative, default=0)
    t.add_argument("--text", metavar="FILE", help="for the text task: train on this UTF-8 file instead")
    t.add_argument("--tbptt", type=_positive, metavar="K", help="truncated BPTT every K steps (default: the task's "
                   "own; for copy, full BPTT)")
    t.add_argument("--synthetic-gradients", action="store_true",
                   help="for copy: synthetic gradients between the TBPTT windows (with --tbptt)")
    t.add_argument("--updates", type=_positive, default=None, metavar="N",
                   help="for copy: the budget of updates (default 20000)")
    t.add_argument("--mnist", metavar="DIR", help="for the MNIST tasks: the full MNIST from DIR's four IDX files "
                   "(train-images-idx3-ubyte etc., optionally .gz) instead of the 5,000-image sample")
    t.add_argument("--permute", action="store_true",
                   help="for pixel-mnist: the pixels in one fixed random order (permuted pixel-MNIST)")
    t.add_argument("--plot", metavar="PNG", type=_plot_path,
                   help="write the loss (and accuracy) curves to this image file (.png added if it has no "
                        "suffix; needs matplotlib)")
    t.add_argument("--workers", type=_positive, metavar="N", help="data-parallel training on a local Dask cluster of N "
                   "worker processes (needs fastrnn[dask])")
    t.add_argument("--scheduler", metavar="ADDRESS", help="data-parallel training on an existing Dask cluster")
    t.add_argument("--compare", type=_positive, metavar="SEEDS",
                   help="synthetic-gradient tasks and copy: train plain TBPTT and synthetic gradients over "
                        "this many seeds and print a table")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    b = commands.add_parser("bench", help="time kernels against their NumPy references, side by side")
    b.add_argument("--cells", nargs="+", metavar="CELL",
                   help="registry names, e.g. rnn-tanh or gru-dilated-1-2-4 (default: all)")
    b.add_argument("--size", action="append", type=_size, metavar="TxBxIxH",
                   help="a size to time; repeat for more (default: each case's own sizes; for cells "
                        "8x1x2x16, 100x1x2x16, 100x16x64x64, 100x32x256x256)")
    b.add_argument("--dtype", choices=["float64", "float32", "both"], default="float64")
    b.add_argument("--truncate", type=_non_negative, default=None, metavar="K",
                   help="per-output horizon (default: full BPTT)")
    b.add_argument("--repeat", type=_positive, default=5, help="interleaved repeats; the minimum is reported")
    b.add_argument("--min-time", type=_positive_seconds, default=0.02, help="seconds per measurement")
    b.add_argument("--threads", type=_threads, default=1, metavar="N",
                   help="Numba threads for the kernels and PyTorch's threads (default 1: a ratio of single-threaded "
                        "code); above 1 the kernels are also timed on one thread, for the scaling")
    b.add_argument("--blas-threads", type=_positive, default=1, metavar="N",
                   help="BLAS threads for NumPy, which the references use (default 1)")
    b.add_argument("--against", choices=["torch"], help="also time PyTorch's fused nn.RNN/GRU/LSTM on the same work")
    b.add_argument("--training", action="store_true",
                   help="time whole training steps through Model (numba, numpy backend, PyTorch) and batch-1 "
                        "updates against the classic per-sample NumPy program")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    commands.add_parser("info", help="versions, CPU, vector width, threads, BLAS and Numba's cache: for bug reports")
    c = commands.add_parser("compile", help="compile the kernels ahead of time into Numba's on-disk cache")
    c.add_argument("--cells", nargs="+", metavar="CELL",
                   help=f"cells to compile (default: all of {', '.join(BY_CELL_NAME)})")
    c.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    c.add_argument("--jobs", type=_positive, metavar="N", help="worker processes (default: every core)")
    c.add_argument("--threaded", action="store_true",
                   help="also the kernels' threaded twins, which large calls on several threads use")
    args = parser.parse_args(argv)
    if args.command == "compile":
        return _compile(args)
    if args.command == "info":
        from .system import report

        print("\n".join(report()))
        return 0
    if args.command == "bench":
        return _bench(args)
    if args.command == "train":
        return _train(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
