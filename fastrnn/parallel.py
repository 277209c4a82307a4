"""Data-parallel training on any executor: the parent's side and the workers' side.

:meth:`fastrnn.Model.fit` with ``executor=`` splits each update's batch into shards whose window
gradients the executor's workers compute; the parent sums them in shard order and applies one
update. Everything here takes a :class:`concurrent.futures.Executor`: a ``ProcessPoolExecutor``,
an MPI pool, or Dask (``distributed.Client(...).get_executor()``; a ``Client`` itself is accepted
too). Work is shipped as plain data (the model's class, its description and arrays), so any worker
that has fastrnn installed can do it. Numba compiles on first use and caches on disk; concurrent
cache writes from several fresh workers are a known Numba hazard, so the parent compiles (or
loads) every kernel a job needs before fanning out (:func:`warm_up`), and the workers then only
read the cache. Hyper-parameter sweeps are in :mod:`fastrnn.sweep`.
"""

import threading

import numpy as np

from ._threads import numba_threads
from .metrics import Metrics, WindowResult
from .optim import SGD


class WorkerError(RuntimeError):
    """A shard of a data-parallel step failed on its worker (it raised, or the worker died)."""


def as_executor(executor):
    """An Executor from ``executor``; a Dask ``Client`` becomes ``client.get_executor(pure=False)``."""
    if executor is None:
        return None
    if hasattr(executor, "get_executor"):  # distributed.Client: results are not pure functions of inputs
        return executor.get_executor(pure=False)
    if not hasattr(executor, "submit"):
        raise TypeError(f"executor: expected a concurrent.futures.Executor or a Dask Client, got "
                        f"{type(executor).__name__}")
    return executor


def warm_up(model, X, Y, fit_kwargs):
    """Compile (or load from the cache) every kernel a fit of ``model`` needs, in this process.

    Runs one training step of a throwaway twin (same architecture, a fresh optimizer of the same
    kind), so ``model`` itself is not touched.
    """
    twin = type(model).from_description(model.describe(), model.backend)
    optimizer = fit_kwargs.get("optimizer", "adam")
    if not isinstance(optimizer, str):
        try:
            optimizer = type(optimizer)(**optimizer.config())
        except TypeError:  # a user's optimizer class with other constructor arguments
            optimizer = SGD(0.0)
    options = {k: fit_kwargs[k] for k in ("tbptt", "truncate") if fit_kwargs.get(k) is not None}
    if fit_kwargs.get("synthetic_gradients") is not None:
        options["synthetic_gradients"] = True
    X, Y = np.asarray(X), np.asarray(Y)
    twin.training_step(X[:1], Y[:1], optimizer=optimizer, **options)()
    twin.predict(X[:1])


class Shards:
    """The parent's side: an executor, the number of parts per batch, and the model as data."""

    def __init__(self, executor, shards, model):
        self.executor, self.shards = executor, shards
        self.description = (type(model), model.describe())  # the architecture does not change during fit

    def window(self, model, x, target, states, window, start, end, following, truncate, step):
        """One window's result from the workers, one shard of the batch each, summed in shard
        order; ``grads`` divided as the model's loss reduction says.

        ``states`` maps a window's first step to the per-shard states entering it; this sets
        ``states[end]`` and, when the next window starts inside this one, ``states[following]``.
        """
        B = x.shape[1]
        bounds = np.linspace(0, B, min(self.shards, B) + 1).astype(int)
        spec = (*self.description, {name: np.array(p) for name, p in model.params.items()})
        entering = states[window] or [None] * (len(bounds) - 1)
        futures = []
        for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            shard_target = target[lo:hi] if model.readout == "last" else target[:, lo:hi]
            futures.append(self.executor.submit(shard_gradients, spec, np.ascontiguousarray(x[:, lo:hi]), shard_target,
                                                entering[s], window, start, end, following, truncate))
        results = []
        for s, future in enumerate(futures):
            try:
                results.append(future.result())
            except Exception as error:  # noqa: BLE001 - reported with its shard and step
                raise WorkerError(f"fit: shard {s + 1} of {len(futures)} failed on its worker at step {step}: "
                                  f"{type(error).__name__}: {error}; the model keeps the parameters of the last "
                                  f"completed step") from error
        total = Metrics()
        for r in results:
            total.add_window(r.result)
        grads = None
        if all(r.result.grads is not None for r in results):
            grads = {name: sum(r.result.grads[name] for r in results) for name in results[0].result.grads}
            if total.positions:
                grads = {name: g / model.normaliser(total.positions) for name, g in grads.items()}
        states[end] = [r.result.final for r in results]
        if following not in states:
            states[following] = [r.entering for r in results]
        return WindowResult(total.loss, total.positions, total.correct, total.judged, grads, None, None)


class ShardResult:
    """What a worker sends back: its window's result (gradient *sums*, so that shards add up) and
    its state at the next window's first step (None if that is the window's end)."""

    __slots__ = ("result", "entering")

    def __init__(self, result, entering):
        self.result, self.entering = result, entering


def shard_gradients(spec, x, target, state, window, start, end, following, truncate):
    """The workers' side of a data-parallel step: one shard's window, from plain data.

    ``spec`` is (the model's class, its :meth:`~fastrnn.Model.describe`, its parameter arrays).
    """
    model_class, description, arrays = spec
    model = _rebuild(model_class, description, arrays)
    # The shards already use the cores: a shard's kernels stay on its worker's one thread, rather
    # than each starting threads of its own (Numba's thread count is per calling thread). With
    # Numba's workqueue threading layer, two threads launching parallel regions at once would
    # even abort the process.
    with numba_threads(1):
        result = model.window_gradients(x, target, state, window, start, end, truncate)
        if result.grads is not None and result.positions:
            result = result._replace(grads={name: g * model.normaliser(result.positions)
                                            for name, g in result.grads.items()})
        entering = None
        if following != end and following != window:
            _, entering, _ = model.core.forward(x[window:following], state)
    return ShardResult(result._replace(dstart=None), entering)


_LOCAL = threading.local()  # per worker thread: threads of one process must not share a model


def _rebuild(model_class, description, arrays):
    """A model of this architecture with these parameters; the object is reused across steps."""
    models = getattr(_LOCAL, "models", None)
    if models is None:
        models = _LOCAL.models = {}
    key = (model_class, repr(description))
    model = models.get(key)
    if model is None:
        model = models[key] = model_class.from_description(description, "numba")
    for name, value in arrays.items():
        model.params[name][...] = value
    return model
