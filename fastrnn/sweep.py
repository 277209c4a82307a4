"""Hyper-parameter sweeps: one model per grid point, here or on any executor.

The executor is a :class:`concurrent.futures.Executor` (processes, MPI, threads) or Dask (a
``Client`` is accepted too); each point is trained by one worker, from plain data (the function
that makes its model, the point, the data), and the parent compiles every architecture's kernels
before any worker starts (:func:`fastrnn.parallel.warm_up`).
"""

import inspect
import itertools
import time

from .model import Model
from .parallel import as_executor, warm_up

#: Grid keys that go to Model.fit rather than to make_model.
_FIT_ARGUMENTS = set(inspect.signature(Model.fit).parameters) - {"self", "X", "Y"}


def grid_points(grid):
    """A list of dicts: ``grid`` itself if it is a list of dicts, or the product of a dict of lists
    (in the order of its keys, the last key varying fastest)."""
    if isinstance(grid, dict):
        keys = list(grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    points = list(grid)
    if not all(isinstance(p, dict) for p in points):
        raise TypeError("grid: expected a dict of lists or a list of dicts")
    return points


def _split_point(point):
    """A grid point's fit arguments (names of Model.fit's parameters) and the rest, for make_model."""
    fit_args = {k: v for k, v in point.items() if k in _FIT_ARGUMENTS}
    model_args = {k: v for k, v in point.items() if k not in _FIT_ARGUMENTS}
    return model_args, fit_args


def run_point(make_model, point, X, Y, fit_kwargs):
    """Train one grid point; the worker side of :func:`sweep` (also its serial path)."""
    model_args, fit_args = _split_point(point)
    began = time.perf_counter()
    model = make_model(**model_args)
    history = model.fit(X, Y, progress=False, **{**fit_kwargs, **fit_args})
    return {"metrics": {key: values[-1] for key, values in history.items()},
            "history": dict(history), "seconds": time.perf_counter() - began}


def sweep(make_model, grid, X, Y, *, executor=None, **fit_kwargs):
    """Train one model per grid point; returns the results in grid order.

    Parameters
    ----------
    make_model : callable
        ``make_model(**point) -> Model``, called with the point's entries that are not arguments
        of :meth:`Model.fit`; the others (``epochs``, ``batch_size``, ``tbptt``, ...) go to fit.
        On a process or Dask executor it must be picklable (a module-level function).
    grid : dict of lists, or list of dicts
        The points: a dict of lists means their product.
    X, Y : array_like
        Training data, the same for every point.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Where to train; None trains each point here, one after the other.
    **fit_kwargs
        Passed to every :meth:`Model.fit` (a point's own entries take precedence).

    Returns
    -------
    list of dict
        Per point: ``"point"``, ``"status"`` ("ok" or "failed"), ``"metrics"`` (the last epoch's),
        ``"history"``, ``"seconds"`` (the point's training wall time) and ``"error"`` (for a point
        whose training raised, or whose worker died). A failed point does not stop the others. A
        point whose worker died is run once more on its own first: Dask also counts the death
        against the tasks that were only queued on that worker.
        A model is built from its seed alone, so each result equals that point trained alone.
    """
    points = grid_points(grid)
    executor = as_executor(executor)
    if executor is None:
        return [_outcome(point, lambda point=point: run_point(make_model, point, X, Y, fit_kwargs))[0]
                for point in points]
    # Compile in the parent, once per distinct architecture, before any worker starts.
    seen = set()
    for point in points:
        model_args, fit_args = _split_point(point)
        try:
            model = make_model(**model_args)
        except Exception:  # noqa: BLE001 - the point's own run reports it
            continue
        key = repr(model.core.describe()) + model.dtype.name + model.backend
        if key not in seen:
            seen.add(key)
            warm_up(model, X, Y, {**fit_kwargs, **fit_args})
    futures = [executor.submit(run_point, make_model, point, X, Y, fit_kwargs) for point in points]
    outcomes = [_outcome(point, future.result) for point, future in zip(points, futures)]
    # A point whose worker died may only have been queued beside the one that killed it: Dask
    # counts every task a dying worker held against that task's retries. Each such point gets a
    # second run on its own, so that only a point that kills its workers by itself fails.
    return [_outcome(point, executor.submit(run_point, make_model, point, X, Y, fit_kwargs).result)[0]
            if worker_died else result for point, (result, worker_died) in zip(points, outcomes)]


#: Exceptions that say a worker process died (Dask's, the standard library's process pool's).
_WORKER_DEATHS = ("KilledWorker", "BrokenProcessPool")


def _outcome(point, result):
    """The result row of ``point``, and whether it failed because its worker died."""
    try:
        return {"point": point, "status": "ok", "error": None, **result()}, False
    except Exception as error:  # noqa: BLE001 - a failed point is reported and the sweep goes on
        row = {"point": point, "status": "failed", "error": f"{type(error).__name__}: {error}", "metrics": {},
               "history": {}, "seconds": float("nan")}
        return row, type(error).__name__ in _WORKER_DEATHS


def format_table(results):
    """Results of :func:`sweep` as a Markdown table."""
    keys = sorted({k for r in results for k in r["point"]})
    metrics = sorted({k for r in results for k in r["metrics"]})
    lines = ["| " + " | ".join([*keys, "status", *metrics, "seconds"]) + " |",
             "|" + "---|" * (len(keys) + len(metrics) + 2)]
    for r in results:
        cells = [str(r["point"].get(k, "")) for k in keys] + [r["status"] if r["status"] == "ok" else
                                                              f"failed: {r['error']}"]
        cells += [f"{r['metrics'][m]:.4g}" if m in r["metrics"] else "" for m in metrics]
        cells.append(f"{r['seconds']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
