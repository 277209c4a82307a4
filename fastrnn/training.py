"""Training a :class:`fastrnn.Model`: the fit loop, TBPTT segments, updates, divergence, checkpoints.

:func:`fit` checks its arguments, restores a checkpoint, then runs the epochs through one of two
loops with one interface, ``targets(Y)`` and ``epoch(X, targets, order, batch_size, epoch, bar)
-> Metrics``:

- :class:`CompiledLoop` (a numba model of one cell, the built-in optimizers): every batch as
  compiled code on flat buffers (:mod:`fastrnn.flat`, :mod:`fastrnn.kernels.training`);
- :class:`PythonLoop` (everything else: stacks, the numpy backend, data-parallel shards, your
  own optimizers): each window through :meth:`fastrnn.Model.window_gradients`, which calls the
  core's public ``forward`` and ``backward``.

Both give the same history. Every update is checked before it is applied: a loss, gradient or
parameter that stops being finite raises :class:`DivergenceError` with the parameters of the
last finite step kept.
"""

import contextlib
import math
import os
import sys
import time

import numpy as np

from . import _validation as v
from . import files, io
from .flat import CompiledLoop as _FlatLoop
from .flat import compiled_loop_applies
from .kernels import training as compiled
from .metrics import Metrics
from .optim import clip_grad_norm, make_optimizer
from .parallel import Shards, as_executor, warm_up
from .synthetic_gradients import SyntheticGradients


class DivergenceError(FloatingPointError):
    """Raised by :meth:`Model.fit` when the loss, a gradient or a parameter stops being finite.

    The model keeps the parameters of the last step that was finite.
    """


class History(dict):
    """Per-epoch training record: ``history["loss"]``, ``["accuracy"]``, ``["val_loss"]``, ... as lists.

    ``seconds`` holds the wall time of each epoch; it is kept apart so that two runs with the
    same seed compare equal.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = []

    def append(self, metrics):
        # Python floats, whatever the dtype that computed them: a float32 model's NumPy scalars
        # would not go into a checkpoint's JSON.
        for key, value in metrics.items():
            self.setdefault(key, []).append(float(value))


# -- arguments ----------------------------------------------------------------------------------

def segments(T, tbptt):
    """Windows of TBPTT(k1, k2): (window start, chunk start, chunk end) for each chunk.

    The chunk's outputs are steps [start, end); they backpropagate through the window that adds
    the k2 - k1 steps before the chunk: k2 steps in all, fewer at the beginning of the sequence
    and for a last chunk shorter than k1. So k1 = k2 = K detaches every K steps exactly.
    """
    if tbptt is None:
        return [(0, 0, T)]
    k1, k2 = tbptt
    return [(max(0, s - (k2 - k1)), s, min(s + k1, T)) for s in range(0, T, k1)]


def check_tbptt(tbptt):
    if tbptt is None:
        return None
    if isinstance(tbptt, tuple) and len(tbptt) == 2:
        k1, k2 = (v.check_positive_int(f"tbptt[{i}]", k) for i, k in enumerate(tbptt))
    else:
        k1 = k2 = v.check_positive_int("tbptt", tbptt)
    if k2 < k1:
        raise ValueError(f"tbptt: expected k2 >= k1 in (k1, k2), got ({k1}, {k2})")
    return k1, k2


def check_synthetic(synthetic, tbptt):
    if synthetic is None or synthetic is False:
        return None
    sg = SyntheticGradients() if synthetic is True else synthetic
    if not isinstance(sg, SyntheticGradients):
        raise TypeError(f"synthetic_gradients: expected None, True or a SyntheticGradients, got "
                        f"{type(synthetic).__name__}")
    if tbptt is None or tbptt[0] != tbptt[1]:
        raise ValueError(f"synthetic_gradients: needs segments of K steps, tbptt=K; got tbptt={tbptt}")
    return sg


def _check_parallel(executor, shards, sg, model):
    if executor is None:
        if shards is not None:
            raise ValueError("shards: data-parallel training needs an executor (executor=...)")
        return None
    if sg is not None:
        raise ValueError("executor: data-parallel training does not combine with synthetic_gradients")
    return Shards(as_executor(executor), v.check_positive_int("shards", 2 if shards is None else shards), model)


def _check_truncate(truncate):
    k = v.check_truncate(truncate)
    return None if k < 0 else k


# -- the two loops ------------------------------------------------------------------------------

class PythonLoop:
    """Every window of every batch through the layers' public calls; any core, either backend,
    data-parallel shards, any optimizer."""

    def __init__(self, model, optimizer, windows, truncate, clip, synthetic=None, shards=None):
        self.model, self.optimizer, self.windows = model, optimizer, windows
        self.truncate, self.clip, self.synthetic, self.shards = truncate, clip, synthetic, shards

    def targets(self, Y):
        return Y

    def epoch(self, X, Y, order, batch_size, epoch, bar=None):
        model = self.model
        metrics = Metrics()
        for batch, lo in enumerate(range(0, len(X), batch_size)):
            idx = np.sort(order[lo:lo + batch_size])
            x = model.time_major(X[idx])
            target = Y[idx] if model.readout == "last" else model.time_major(Y[idx])
            metrics.merge(self.batch(x, target, epoch, batch))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{metrics.mean_loss:.4g}")
        return metrics

    def batch(self, x, target, epoch=0, batch=0):
        """Every window of one batch (time-major ``x`` and ``target``): forward, backward, update."""
        model, optimizer, sg = self.model, self.optimizer, self.synthetic
        T = x.shape[0]
        states = {0: None}  # the state entering each window, by its first step (per shard with shards)
        metrics = Metrics()
        windows = self.windows
        for i, (window, start, end) in enumerate(windows):
            following = windows[i + 1][0] if i + 1 < len(windows) else end
            step = optimizer.steps + 1
            if self.shards is not None:
                result = self.shards.window(model, x, target, states, window, start, end, following, self.truncate,
                                            step)
            else:
                inject = sg.inject if sg is not None and end < T else None
                result = model.window_gradients(x, target, states[window], window, start, end, self.truncate, inject)
                states[end] = result.final
                if following not in states:
                    # The next window starts inside this one: its entering state is a constant,
                    # computed with the parameters of this window's forward.
                    _, states[following], _ = model.core.forward(x[window:following], states[window])
            loss = result.loss / result.positions if result.positions else 0.0
            apply_update(model, optimizer, result.grads, loss, self.clip, step, epoch, batch)
            if sg is not None and window > 0:
                # M's prediction at this boundary learns from the gradient that reached it.
                metrics.add_sg(sg.train(states[window], result.dstart))
            metrics.add_window(result)
        return metrics


class CompiledLoop:
    """Every batch as compiled code (:class:`fastrnn.flat.CompiledLoop`), in blocks of batches."""

    def __init__(self, model, optimizer, windows, truncate, clip, synthetic=None):
        self.loop = _FlatLoop(model, optimizer, windows, truncate, clip, synthetic)
        self.windows = windows

    def targets(self, Y):
        return self.loop.targets(Y)

    def epoch(self, X, targets, order, batch_size, epoch, bar=None):
        out, stop = self.loop.epoch(X, targets, order, batch_size, _bar_updater(bar))
        if stop is not None:
            raise stopped(self.loop, *stop, epoch)
        batches = math.ceil(len(X) / batch_size)
        return Metrics(*out[:4], out[compiled.O_SG_LOSS], batches * (len(self.windows) - 1))

    def stepper(self, X, targets):
        """A function running one update on the batch (X, targets) in this order, laid out once;
        it returns the update's :class:`Metrics`."""
        run = self.loop.stepper(X, targets)
        windows = len(self.windows) - 1

        def step():
            status, out = run()
            if status != compiled.OK:
                raise stopped(self.loop, status, 0, out[compiled.O_VALUE], 0)
            sums = out.tolist()  # Python floats at once: indexing the array cost 0.6 µs an update
            return Metrics(*sums[:4], sums[compiled.O_SG_LOSS], windows)

        return step


def make_loop(model, optimizer, windows, truncate, clip, synthetic, shards):
    if compiled_loop_applies(model, optimizer, synthetic, shards):
        return CompiledLoop(model, optimizer, windows, truncate, clip, synthetic)
    return PythonLoop(model, optimizer, windows, truncate, clip, synthetic, shards)


# -- fit --------------------------------------------------------------------------------------

def fit(model, X, Y, *, epochs, batch_size=32, optimizer="adam", tbptt=None, truncate=None, clip=None,
        validation=None, progress=None, checkpoint=None, resume=False, synthetic_gradients=None,
        executor=None, shards=None):
    """:meth:`fastrnn.Model.fit` (which documents the arguments); returns the :class:`History`."""
    epochs = v.check_positive_int("epochs", epochs)
    batch_size = v.check_positive_int("batch_size", batch_size)
    tbptt = check_tbptt(tbptt)
    sg = check_synthetic(synthetic_gradients, tbptt)
    pool = _check_parallel(executor, shards, sg, model)
    truncate = _check_truncate(truncate)
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
        raise ValueError(f"clip: expected None or a number > 0, got {clip!r}")
    X = model.checked_inputs(X)
    N, T = X.shape[:2]
    Y = model.checked_targets(Y, N, T)
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation: expected a pair (X, Y)")
        Xv = model.checked_inputs(validation[0], "validation[0]")
        Yv = model.checked_targets(validation[1], len(Xv), Xv.shape[1], "validation[1]")
    if checkpoint is not None:  # before any work: a bad path must not cost an epoch
        io.check_writable("checkpoint", checkpoint)
    optimizer = make_optimizer(optimizer)
    history = History()
    first_epoch = 0
    if sg is not None:
        sg.prepare(model.core.state_size(), model.dtype)
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        first_epoch, history = restore_checkpoint(model, optimizer, checkpoint, synthetic=sg)
    if pool is not None:  # compile here first: fresh workers writing Numba's cache at once is a hazard
        warm_up(model, X, Y, {"optimizer": optimizer, "tbptt": tbptt, "truncate": truncate})
    bar = _progress_bar(progress, total=(epochs - first_epoch) * math.ceil(N / batch_size))
    loop = make_loop(model, optimizer, segments(T, tbptt), truncate, clip, sg, pool)
    targets = loop.targets(Y)
    # Overflow and NaN are not warnings here: every update checks for them and stops (DivergenceError).
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), _closing(bar):
        for epoch in range(first_epoch, epochs):
            began = time.perf_counter()
            order = np.random.default_rng([model.seed, epoch]).permutation(N)
            metrics = loop.epoch(X, targets, order, batch_size, epoch, bar).as_dict(model.loss.has_accuracy,
                                                                                   sg is not None)
            if validation is not None:
                metrics.update({f"val_{key}": value for key, value in model.evaluate(Xv, Yv).items()})
            history.append(metrics)
            history.seconds.append(time.perf_counter() - began)
            if checkpoint is not None:
                files.save(model, checkpoint, optimizer=optimizer, epoch=epoch + 1, history=history, synthetic=sg)
    return history


def training_step(model, X, Y, *, optimizer="adam", tbptt=None, truncate=None, synthetic_gradients=None):
    """:meth:`fastrnn.Model.training_step`: a function running one update on (X, Y), which are
    checked and laid out once; it returns the update's :class:`~fastrnn.metrics.Metrics`."""
    X = model.checked_inputs(X)
    Y = model.checked_targets(Y, len(X), X.shape[1])
    optimizer = make_optimizer(optimizer)
    tbptt = check_tbptt(tbptt)
    truncate = _check_truncate(truncate)
    sg = check_synthetic(synthetic_gradients, tbptt)
    if sg is not None:
        sg.prepare(model.core.state_size(), model.dtype)
    loop = make_loop(model, optimizer, segments(X.shape[1], tbptt), truncate, None, sg, None)
    if isinstance(loop, CompiledLoop):
        return loop.stepper(X, loop.targets(Y))
    x = model.time_major(X)
    target = Y if model.readout == "last" else model.time_major(Y)

    def step():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return loop.batch(x, target)

    return step


# -- updates and divergence ---------------------------------------------------------------------

def apply_update(model, optimizer, grads, loss, clip, step, epoch, batch):
    """One optimizer update, refused (with the parameters left as they were) if anything is not finite."""
    if not math.isfinite(loss):
        raise _diverged(f"the loss became {loss}", step, epoch, batch)
    if grads is None:
        raise _diverged("the gradient at the outputs became non-finite", step, epoch, batch)
    if clip is not None:
        clip_grad_norm(grads, clip)
    # The optimizer checks every gradient and updated value before it writes any: a refused
    # update leaves parameters and optimizer state as they were.
    if not optimizer.step(dict(model.params.items()), grads):
        raise _diverged(_update_refused(grads), step, epoch, batch)


def stopped(loop, status, batch, value, epoch):
    """The DivergenceError of a stop of the compiled loop (the update it refused was not applied)."""
    step = loop.optimizer.steps + 1
    if status == compiled.LOSS_NOT_FINITE:
        return _diverged(f"the loss became {value}", step, epoch, batch)
    if status == compiled.OUTPUT_GRADIENT_NOT_FINITE:
        return _diverged("the gradient at the outputs became non-finite", step, epoch, batch)
    return _diverged(_update_refused(loop.flat.views(loop.grads)), step, epoch, batch)


def _diverged(what, step, epoch, batch):
    return DivergenceError(f"fit: {what} at step {step} (epoch {epoch + 1}, batch {batch + 1}); training stopped, "
                           f"and the model keeps the parameters it had before this step")


def _update_refused(grads):
    bad = [name for name, g in grads.items() if not np.isfinite(g).all()]
    return f"the gradient of {bad[0]!r} became non-finite" if bad else "the update would make the parameters non-finite"


# -- checkpoints ------------------------------------------------------------------------------

def restore_checkpoint(model, optimizer, path, synthetic=None):
    """Load a :meth:`Model.fit` checkpoint into ``model``, ``optimizer`` and the synthetic-gradient
    module, if any; returns (epoch, history).

    All or nothing: the whole file is checked against the model, the optimizer and the module
    (architecture, every array's shape and dtype, the optimizer's kind, settings and state, the
    history) before anything is changed, so a refused file leaves all three as they were.
    """
    arrays, meta = files.read(path)  # read once: the model and the training state come from the same file
    saved = files.build(type(model), arrays, meta, path, model.backend)
    if saved.describe() != model.describe():
        raise ValueError(f"checkpoint: {path} holds a different model ({saved!r}); cannot resume {model!r} from it")
    if "epoch" not in meta or "optimizer" not in meta:
        raise ValueError(f"checkpoint: {path} is a saved model, not a fit checkpoint (no epoch or optimizer)")
    kind = meta["optimizer"].get("kind") if isinstance(meta["optimizer"], dict) else None
    config = meta["optimizer"].get("config") if isinstance(meta["optimizer"], dict) else None
    if kind != type(optimizer).__name__ or config != optimizer.config():
        raise ValueError(f"checkpoint: {path} was written with {kind}({config}), not {optimizer!r}")
    saved_sg = meta.get("synthetic")
    ours = None if synthetic is None else {"scale": synthetic.scale, "lr": synthetic.lr}
    if saved_sg != ours:
        raise ValueError(f"checkpoint: {path} was written with synthetic gradients {saved_sg}, this fit uses {ours}")
    try:
        epoch, metrics, seconds = files.checked_history(meta)
    except ValueError as error:
        raise ValueError(f"checkpoint: {path}: {error}") from None

    # Every part is checked on a scratch object first; only then is anything live changed.
    staged = type(optimizer)(**optimizer.config())
    staged.load_state_arrays(io.section(arrays, "optimizer/"), model.params,
                             source=f"checkpoint: {path}: optimizer state")
    if synthetic is not None:
        stored_sg = io.section(arrays, "sg/")
        if set(stored_sg) != set(synthetic.params):
            raise ValueError(f"checkpoint: {path} holds synthetic-gradient arrays {sorted(stored_sg)}, expected "
                             f"{sorted(synthetic.params)}")
        for key, value in stored_sg.items():
            target = synthetic.params[key]
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"checkpoint: {path} holds sg/{key} of shape {value.shape} and dtype "
                                 f"{value.dtype.name}, expected {target.shape} and {target.dtype.name}")
        staged_sg = type(synthetic.optimizer)(**synthetic.optimizer.config())
        staged_sg.load_state_arrays(io.section(arrays, "sg_optimizer/"), synthetic.params,
                                    source=f"checkpoint: {path}: synthetic-gradient optimizer state")
    # Nothing below can fail.
    if synthetic is not None:
        for key, value in stored_sg.items():
            synthetic.params[key][...] = value
        synthetic.optimizer.steps, synthetic.optimizer.state = staged_sg.steps, staged_sg.state
    for key, value in saved.params.items():
        model.params[key][...] = value
    model.seed = saved.seed
    optimizer.steps, optimizer.state = staged.steps, staged.state
    history = History(metrics)
    history.seconds = list(seconds)
    return epoch, history


# -- progress ---------------------------------------------------------------------------------

def _bar_updater(bar):
    if bar is None:
        return None

    def update(batches, total, positions):
        bar.update(batches)
        bar.set_postfix(loss=f"{total / max(positions, 1):.4g}")
    return update


@contextlib.contextmanager
def _closing(bar):
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(progress, total):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415  (an optional dependency, imported when asked for)
    except ImportError:
        raise ImportError("progress=True needs tqdm: pip install 'fastrnn[examples]'") from None
    return tqdm(total=total, unit="batch", leave=False)
