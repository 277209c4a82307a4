"""Training: a recurrent core, a per-step linear head and a loss, fitted with (truncated) BPTT.

Data are samples first, as in scikit-learn and Keras: ``X`` is (N, T, I); the core sees each
batch time-major, (T, B, I).
"""

import contextlib
import math
import os
import sys
import time

import numpy as np

from . import _validation as v
from ._params import PrefixedParams
from .cells import Cell
from .flat import CompiledLoop, FlatParameters, compiled_loop_applies
from .kernels import training as compiled
from .losses import LOSSES
from .optim import clip_grad_norm, make_optimizer
from .stacks import Bidirectional, DilatedRNN
from .synthetic import SyntheticGradients, state_size


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


class _Head:
    """The per-step linear read-out z = y W^T + b; ``params`` is ``weight (O, H)``, ``bias (O,)``."""

    def __init__(self, params):
        self.params = params


def _segments(T, tbptt):
    """Chunks of TBPTT(k1, k2): (window start, chunk start, chunk end) for each chunk.

    The chunk's outputs are steps [start, end); they backpropagate through the window that adds
    the k2 - k1 steps before the chunk: k2 steps in all, fewer at the beginning of the sequence
    and for a last chunk shorter than k1. So k1 = k2 = K detaches every K steps exactly.
    """
    if tbptt is None:
        return [(0, 0, T)]
    k1, k2 = tbptt
    return [(max(0, s - (k2 - k1)), s, min(s + k1, T)) for s in range(0, T, k1)]


def _check_tbptt(tbptt):
    if tbptt is None:
        return None
    if isinstance(tbptt, tuple) and len(tbptt) == 2:
        k1, k2 = (v.check_positive_int(f"tbptt[{i}]", k) for i, k in enumerate(tbptt))
    else:
        k1 = k2 = v.check_positive_int("tbptt", tbptt)
    if k2 < k1:
        raise ValueError(f"tbptt: expected k2 >= k1 in (k1, k2), got ({k1}, {k2})")
    return k1, k2


def _check_parallel(executor, shards, sg):
    if executor is None:
        if shards is not None:
            raise ValueError("shards: data-parallel training needs an executor (executor=...)")
        return None
    from .parallel import as_executor  # noqa: PLC0415

    if sg is not None:
        raise ValueError("executor: data-parallel training does not combine with synthetic_gradients")
    return as_executor(executor), v.check_positive_int("shards", 2 if shards is None else shards)


def _check_synthetic(synthetic, tbptt):
    if synthetic is None or synthetic is False:
        return None
    sg = SyntheticGradients() if synthetic is True else synthetic
    if not isinstance(sg, SyntheticGradients):
        raise TypeError(f"synthetic_gradients: expected None, True or a SyntheticGradients, got "
                        f"{type(synthetic).__name__}")
    if tbptt is None or tbptt[0] != tbptt[1]:
        raise ValueError(f"synthetic_gradients: needs segments of K steps, tbptt=K; got tbptt={tbptt}")
    return sg


class Model:
    r"""A recurrent core with a linear head on each step's output, and a loss.

    .. math:: z_t = W y_t + b, \quad \text{loss} = \frac{1}{P} \sum_{\text{positions}} \ell(z_t, \text{target}_t)

    where ``y_t`` is the core's output and P the number of positions (samples times steps for
    ``readout="all"``, samples for ``"last"``); P = 1 with ``reduction="sum"``.

    Parameters
    ----------
    core : Cell, Bidirectional or DilatedRNN
        The recurrent part; its backend (numba or numpy) is the model's.
    output_size : int
        O, the number of classes or outputs.
    loss : {"softmax_cross_entropy", "sigmoid_cross_entropy", "mse"}
        Softmax cross-entropy takes integer class targets; the others float targets with O
        features (sigmoid cross-entropy: values in [0, 1]).
    readout : {"all", "last"}
        A target at every step, or only at the last one.
    reduction : {"mean", "sum"}
        What each update minimises: the loss averaged over the batch's positions (the default),
        or summed over them, as the classic NumPy programs and PyTorch's ``reduction="sum"`` do,
        so that their learning rates carry over unchanged. The reported loss (history,
        :meth:`evaluate`) is the mean per position either way, comparable across batch sizes.
    seed : int, optional
        Seeds the head's U(-1/sqrt(H), 1/sqrt(H)) initialisation and the order of batches in
        :meth:`fit`.

    Attributes
    ----------
    params : mapping
        One live view: ``"core.<name>"`` for the core's arrays and ``"head.weight"`` (O, H),
        ``"head.bias"`` (O,).

    Examples
    --------
    >>> import fastrnn
    >>> from fastrnn import datasets
    >>> (X, Y), test = datasets.binary_addition(1000, 200, seed=0)
    >>> model = fastrnn.Model(fastrnn.RNN(2, 16, "sigmoid", seed=0), 1, loss="sigmoid_cross_entropy", seed=0)
    >>> history = model.fit(X, Y, epochs=8, batch_size=16, optimizer=fastrnn.Adam(0.02), progress=False)
    >>> model.evaluate(*test)["accuracy"] > 0.99
    True
    >>> model.predict(test[0][:3]).shape   # sigmoid probabilities, (N, T, O)
    (3, 8, 1)
    """

    def __init__(self, core, output_size, *, loss="softmax_cross_entropy", readout="all", reduction="mean",
                 seed=None):
        if not isinstance(core, (Cell, Bidirectional, DilatedRNN)):
            raise TypeError(f"core: expected a fastrnn cell, Bidirectional or DilatedRNN, got {type(core).__name__}")
        self.core = core
        self.output_size = v.check_positive_int("output_size", output_size)
        self.loss = LOSSES[v.check_choice("loss", loss, tuple(LOSSES))]()
        self.readout = v.check_choice("readout", readout, ("all", "last"))
        self.reduction = v.check_choice("reduction", reduction, ("mean", "sum"))
        if seed is None:  # drawn once, so that a saved model still resumes exactly
            seed = int(np.random.default_rng().integers(2**31))
        self.seed = v.check_seed(seed)
        rng = np.random.default_rng(self.seed)
        H = core.output_size
        bound = 1.0 / math.sqrt(H)
        self.head = _Head({"weight": rng.uniform(-bound, bound, (self.output_size, H)).astype(core.dtype),
                           "bias": rng.uniform(-bound, bound, self.output_size).astype(core.dtype)})
        self.params = PrefixedParams({"core": core, "head": self.head})
        # A one-cell numba model keeps its parameters in one buffer, which fit's compiled loop updates.
        self._flat = FlatParameters(self) if isinstance(core, Cell) and core.backend == "numba" else None

    dtype = property(lambda self: self.core.dtype)
    backend = property(lambda self: self.core.backend)

    # -- data ---------------------------------------------------------------------------------

    def _check_X(self, X, name="X"):
        return v.as_float_array(name, X, self.dtype, (None, None, self.core.input_size), "N, T, input_size")

    def _check_Y(self, Y, N, T, name="Y"):
        last = self.readout == "last"
        if self.loss.integer_targets:
            shape, hint = ((N,), "N") if last else ((N, T), "N, T")
            array = np.asarray(Y)
            if array.dtype.kind not in "iu":
                raise TypeError(f"{name}: expected integer class labels for {self.loss.name}, got dtype "
                                f"{array.dtype.name}")
            if array.shape != shape:
                raise ValueError(f"{name}: expected shape {shape} ({hint}), got {array.shape}")
            if array.size and (array.min() < 0 or array.max() >= self.output_size):
                raise ValueError(f"{name}: expected class labels in 0..{self.output_size - 1}, got values in "
                                 f"{array.min()}..{array.max()}")
            return array.astype(np.intp)
        shape, hint = ((N, self.output_size), "N, output_size") if last else \
            ((N, T, self.output_size), "N, T, output_size")
        return v.as_float_array(name, Y, self.dtype, shape, hint)

    @staticmethod
    def _time_major(a):
        return np.ascontiguousarray(np.swapaxes(a, 0, 1))

    # -- one batch ----------------------------------------------------------------------------

    def _head_forward(self, y):
        return y @ self.head.params["weight"].T + self.head.params["bias"]

    def _head_backward(self, y, dz):
        """Gradients of the head from dz at outputs y (both (..., O) and (..., H)); returns dy too."""
        weight = self.head.params["weight"]
        flat_y = y.reshape(-1, y.shape[-1])
        flat_dz = dz.reshape(-1, dz.shape[-1])
        return {"head.weight": flat_dz.T @ flat_y, "head.bias": flat_dz.sum(axis=0)}, dz @ weight

    def _logits(self, x):
        """x (T, B, I) time-major -> logits (T, B, O) or (B, O)."""
        y, _, _ = self.core.forward(x)
        return self._head_forward(y[-1] if self.readout == "last" else y)

    def _chunk_step(self, x, target, state, window, start, end, truncate, inject=None):
        """Forward over steps [window, end) from ``state``; backward of the losses of [start, end).

        ``target`` is the batch's time-major target, (T, B, ...), or (B, ...) for "last".
        ``inject(final_state)``, if given, returns a gradient to inject at the window's final
        state (synthetic gradients). Returns (loss sum, positions, correct, judged, grads, final
        state, gradient at the window's start state); ``grads`` is None when the loss is not
        finite.
        """
        T = x.shape[0]
        y, final, tape = self.core.forward(x[window:end], state)
        has_loss = self.readout == "all" or end == T
        if not has_loss and inject is None:
            # Nothing reaches this chunk (an early chunk of readout="last"): its gradient is zero,
            # and the update after it still counts (so TBPTT equals synthetic gradients with M = 0).
            return 0.0, 0, 0, 0, {name: np.zeros_like(p) for name, p in self.params.items()}, final, None
        dy = np.zeros_like(y)
        if has_loss:
            own = y[-1] if self.readout == "last" else y[start - window:]
            target = target if self.readout == "last" else target[start:end]
            z = self._head_forward(own)
            count = z.shape[0] if self.readout == "last" else z.shape[0] * z.shape[1]
            norm = self.normaliser(count)
            value, dz = self.loss.value_and_grad(z, target, norm)
            correct, judged = self.loss.correct(z, target) if self.loss.has_accuracy else (0, 0)
            if not (math.isfinite(value) and np.isfinite(dz).all()):
                return value * norm, count, correct, judged, None, final, None  # diverged: fit stops
            if self.readout == "last":
                grads, dy[-1] = self._head_backward(own, dz)
            else:
                grads, dy[start - window:] = self._head_backward(own, dz)
        else:
            value, count, norm, correct, judged = 0.0, 0, 1, 0, 0
            grads = {f"head.{name}": np.zeros_like(p) for name, p in self.head.params.items()}
        dstate = None if inject is None else inject(final)
        core_grads, _, dstart = self.core.backward(tape, dy, dstate, truncate=truncate)
        grads.update({f"core.{name}": g for name, g in core_grads.items()})
        return value * norm, count, correct, judged, grads, final, dstart

    def normaliser(self, count):
        """What the summed loss of ``count`` positions is divided by before differentiation."""
        return count if self.reduction == "mean" else 1

    # -- public -------------------------------------------------------------------------------

    def predict(self, X, batch_size=256):
        """The head's output through the loss's link: class probabilities (softmax), sigmoid
        probabilities, or raw values (mse).

        Returns an array of shape (N, T, O) for ``readout="all"``, (N, O) for ``"last"``.
        """
        X = self._check_X(X)
        outputs = []
        for lo in range(0, len(X), batch_size):
            z = self._logits(self._time_major(X[lo:lo + batch_size]))
            outputs.append(self.loss.link(z if self.readout == "last" else np.swapaxes(z, 0, 1)))
        return np.concatenate(outputs)

    def evaluate(self, X, Y, batch_size=256):
        """Mean loss over all positions, and accuracy where the loss has one (not for mse)."""
        X = self._check_X(X)
        Y = self._check_Y(Y, len(X), X.shape[1])
        total, positions, correct, judged = 0.0, 0, 0, 0
        for lo in range(0, len(X), batch_size):
            z = self._logits(self._time_major(X[lo:lo + batch_size]))
            target = Y[lo:lo + batch_size]
            if self.readout == "all":
                target = self._time_major(target)
            count = z.shape[0] * (1 if self.readout == "last" else z.shape[1])
            value, _ = self.loss.value_and_grad(z, target, count)
            total += value * count
            positions += count
            if self.loss.has_accuracy:
                c, n = self.loss.correct(z, target)
                correct, judged = correct + c, judged + n
        metrics = {"loss": total / positions}
        if self.loss.has_accuracy:
            metrics["accuracy"] = correct / judged
        return metrics

    def fit(self, X, Y, *, epochs, batch_size=32, optimizer="adam", tbptt=None, truncate=None, clip=None,
            validation=None, progress=None, checkpoint=None, resume=False, synthetic_gradients=None,
            executor=None, shards=None):
        """Train on (X, Y); returns the :class:`History`.

        Parameters
        ----------
        X : array_like, shape (N, T, input_size)
        Y : array_like
            (N, T) integer classes or (N, T, O) floats for ``readout="all"``; (N,) or (N, O) for
            ``"last"``.
        epochs : int
            Passes over the data. With ``resume=True`` the total, counting the saved ones.
        batch_size : int
            Samples per batch; batches are drawn in a seeded order, the same for the same seed.
        optimizer : {"adam", "sgd", "rmsprop"} or Optimizer
        tbptt : None, int K or (k1, k2)
            Truncated BPTT (Williams & Peng): the sequence is consumed k1 steps at a time, the
            state carried forward; after each chunk the losses of its k1 outputs are
            backpropagated through the last k2 >= k1 steps (the chunk and the k2 - k1 steps
            before it; fewer at the start), whose entering state is a constant, and the
            parameters are updated (after every chunk, also one that no loss reaches, as an early
            chunk of ``readout="last"``). K means (K, K): detach every K steps. None: one update
            per batch through the whole sequence.
        truncate : None or int
            The per-output horizon of :meth:`Cell.backward`, applied inside each window.
        clip : float, optional
            Rescale the gradients of each update so that their global L2 norm is at most this.
        validation : (X, Y), optional
            Evaluated after every epoch into ``val_loss`` (and ``val_accuracy``).
        progress : bool, optional
            A tqdm progress bar; by default only when standard error is a terminal.
        checkpoint : str or path, optional
            Saved (atomically) after every epoch, with the optimizer state and the history.
        resume : bool
            Continue from ``checkpoint`` if it exists: an interrupted and resumed run equals an
            uninterrupted one bit for bit.
        synthetic_gradients : None, True or SyntheticGradients
            Decoupled training (Jaderberg et al. 2016), with ``tbptt=K``: each segment's backward
            also receives, at its final state, the gradient a linear module M(s) = s A + c predicts
            for the rest of the sequence, and the parameters are updated at once; M learns from
            the gradient each segment's backward sends into its start state. The exact rules are
            in :mod:`fastrnn.synthetic`. ``True`` means ``SyntheticGradients()``; pass your own
            object to set ``scale`` and ``lr`` or to keep M between fits.
        executor : concurrent.futures.Executor or distributed.Client, optional
            Data-parallel training: each update's batch is split into ``shards`` parts whose
            gradients are computed on the executor's workers (with the numba kernels), summed in
            shard order and applied once here. The history equals the single-process one up to
            the order of floating-point sums. A shard that fails (raises, or its worker dies)
            stops fit with :class:`fastrnn.parallel.WorkerError`, the parameters at their last
            completed update.
        shards : int, optional
            Parts per batch (default: 2); only with ``executor``.

        Raises
        ------
        DivergenceError
            When the loss, a gradient or a parameter becomes non-finite; the model then keeps the
            parameters of the last finite step.
        """
        from . import io  # noqa: PLC0415  (io imports this module)

        epochs = v.check_positive_int("epochs", epochs)
        batch_size = v.check_positive_int("batch_size", batch_size)
        tbptt = _check_tbptt(tbptt)
        sg = _check_synthetic(synthetic_gradients, tbptt)
        pool = _check_parallel(executor, shards, sg)
        if pool is not None:  # the architecture does not change during fit: describe it once
            pool = (*pool, io.model_spec(self))
        k = v.check_truncate(truncate)
        truncate = None if k < 0 else k
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
            raise ValueError(f"clip: expected None or a number > 0, got {clip!r}")
        X = self._check_X(X)
        N, T = X.shape[:2]
        Y = self._check_Y(Y, N, T)
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise TypeError("validation: expected a pair (X, Y)")
            Xv = self._check_X(validation[0], "validation[0]")
            Yv = self._check_Y(validation[1], len(Xv), Xv.shape[1], "validation[1]")
        if checkpoint is not None:  # before any work: a bad path must not cost an epoch
            io.check_writable("checkpoint", checkpoint)
        optimizer = make_optimizer(optimizer)
        history = History()
        first_epoch = 0
        if sg is not None:
            sg.prepare(state_size(self.core), self.dtype)
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            first_epoch, history = io.restore_checkpoint(self, optimizer, checkpoint, synthetic=sg)
        if pool is not None:  # compile here first: fresh workers writing Numba's cache at once is a hazard
            from .parallel import warm_up  # noqa: PLC0415

            warm_up(self, X, Y, {"optimizer": optimizer, "tbptt": tbptt, "truncate": truncate})
        bar = _progress_bar(progress, total=(epochs - first_epoch) * math.ceil(N / batch_size))
        segments = _segments(T, tbptt)
        loop = None
        if compiled_loop_applies(self, optimizer, sg, pool):
            loop = CompiledLoop(self, optimizer, segments, truncate, clip, sg)
            targets = loop.targets(Y)
        # Overflow and NaN are not warnings here: every update checks for them and stops (DivergenceError).
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), _closing(bar):
            for epoch in range(first_epoch, epochs):
                began = time.perf_counter()
                order = np.random.default_rng([self.seed, epoch]).permutation(N)
                total, positions, correct, judged = 0.0, 0, 0, 0
                sg_sum, sg_count = 0.0, 0
                if loop is not None:
                    sums, stop = loop.epoch(X, targets, order, batch_size, _bar_updater(bar))
                    if stop is not None:
                        self._stopped(loop, *stop, epoch)
                    total, positions, correct, judged = sums[:4]
                    sg_sum = sums[compiled.O_SG_LOSS]
                    sg_count = math.ceil(N / batch_size) * (len(segments) - 1)
                else:
                    for batch, lo in enumerate(range(0, N, batch_size)):
                        idx = np.sort(order[lo:lo + batch_size])
                        x = self._time_major(X[idx])
                        target = Y[idx] if self.readout == "last" else self._time_major(Y[idx])
                        value, count, c, n, sg_loss = self._train_batch(x, target, optimizer, segments, truncate,
                                                                        clip, sg, epoch, batch, pool)
                        total, positions = total + value, positions + count
                        correct, judged = correct + c, judged + n
                        if sg is not None:
                            sg_sum, sg_count = sg_sum + sg_loss, sg_count + len(segments) - 1
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(epoch=epoch + 1, loss=f"{total / max(positions, 1):.4g}")
                metrics = {"loss": total / positions}
                if self.loss.has_accuracy:
                    metrics["accuracy"] = correct / judged
                if sg is not None:
                    metrics["sg_loss"] = sg_sum / max(sg_count, 1)
                if validation is not None:
                    metrics.update({f"val_{key}": value for key, value in self.evaluate(Xv, Yv).items()})
                history.append(metrics)
                history.seconds.append(time.perf_counter() - began)
                if checkpoint is not None:
                    io.save(self, checkpoint, optimizer=optimizer, epoch=epoch + 1, history=history, synthetic=sg)
        return history

    def _train_batch(self, x, target, optimizer, segments, truncate, clip, sg, epoch=0, batch=0, pool=None):
        """Every chunk of one batch (time-major ``x`` and ``target``): forward, backward, update.

        With ``pool`` = (executor, shards, model spec) the chunks' gradients come from the workers.
        Returns (loss sum, positions, correct, judged, summed synthetic-gradient loss).
        """
        T = x.shape[0]
        states = {0: None}  # the state entering each window, by its first step (per shard with a pool)
        total, positions, correct, judged, sg_total = 0.0, 0, 0, 0, 0.0
        for i, (window, start, end) in enumerate(segments):
            following = segments[i + 1][0] if i + 1 < len(segments) else end
            if pool is not None:
                value, count, c, n, grads = self._parallel_chunk(pool, x, target, states, window, start, end,
                                                                 following, truncate, optimizer.steps + 1)
            else:
                inject = sg.inject if sg is not None and end < T else None
                value, count, c, n, grads, states[end], dstart = self._chunk_step(
                    x, target, states[window], window, start, end, truncate, inject)
                if following not in states:
                    # The next window starts inside this one: its entering state is a constant,
                    # computed with the parameters of this chunk's forward.
                    _, states[following], _ = self.core.forward(x[window:following], states[window])
            self._apply(optimizer, grads, value / count if count else 0.0, clip, optimizer.steps + 1, epoch, batch)
            if sg is not None and window > 0:
                # M's prediction at this boundary learns from the gradient that reached it.
                sg_total += sg.train(states[window], dstart)
            total, positions, correct, judged = total + value, positions + count, correct + c, judged + n
        return total, positions, correct, judged, sg_total

    def _parallel_chunk(self, pool, x, target, states, window, start, end, following, truncate, step):
        """One chunk's gradient from the workers, one shard of the batch each, summed in shard order."""
        from .parallel import WorkerError, shard_gradients  # noqa: PLC0415

        executor, shards, description = pool
        B = x.shape[1]
        bounds = np.linspace(0, B, min(shards, B) + 1).astype(int)
        spec = (description, {name: np.array(p) for name, p in self.params.items()})
        entering = states[window] or [None] * (len(bounds) - 1)
        futures = []
        for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            shard_target = target[lo:hi] if self.readout == "last" else target[:, lo:hi]
            futures.append(executor.submit(shard_gradients, spec, np.ascontiguousarray(x[:, lo:hi]), shard_target,
                                           entering[s], window, start, end, following, truncate))
        results = []
        for s, future in enumerate(futures):
            try:
                results.append(future.result())
            except Exception as error:  # noqa: BLE001 - reported with its shard and step
                raise WorkerError(f"fit: shard {s + 1} of {len(futures)} failed on its worker at step {step}: "
                                  f"{type(error).__name__}: {error}; the model keeps the parameters of the last "
                                  f"completed step") from error
        value = sum(r[0] for r in results)
        count = sum(r[1] for r in results)
        grads = None
        if all(r[4] is not None for r in results):
            grads = {name: sum(r[4][name] for r in results) for name in results[0][4]}
            if count:
                grads = {name: g / self.normaliser(count) for name, g in grads.items()}
        states[end] = [r[5] for r in results]
        if following not in states:
            states[following] = [r[6] for r in results]
        return value, count, sum(r[2] for r in results), sum(r[3] for r in results), grads

    def training_step(self, X, Y, *, optimizer="adam", tbptt=None, truncate=None, synthetic_gradients=None):
        """A function that runs one training update on the batch (X, Y), checked and laid out
        once: what :meth:`fit` does per batch, for timing it (``fastrnn train`` does)."""
        X = self._check_X(X)
        Y = self._check_Y(Y, len(X), X.shape[1])
        x = self._time_major(X)
        target = Y if self.readout == "last" else self._time_major(Y)
        optimizer = make_optimizer(optimizer)
        tbptt = _check_tbptt(tbptt)
        segments = _segments(x.shape[0], tbptt)
        k = v.check_truncate(truncate)
        sg = _check_synthetic(synthetic_gradients, tbptt)
        if sg is not None:
            sg.prepare(state_size(self.core), self.dtype)
        if compiled_loop_applies(self, optimizer, sg, None):
            loop = CompiledLoop(self, optimizer, segments, None if k < 0 else k, None, sg)
            targets, order = loop.targets(Y), np.arange(len(X))

            def compiled_step():
                status, out = loop.run(X, targets, order, len(X), 0, 1)
                if status != compiled.OK:
                    self._stopped(loop, status, 0, out[compiled.O_VALUE], 0)
                return (*out[:4], out[compiled.O_SG_LOSS])

            return compiled_step

        def step():
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                return self._train_batch(x, target, optimizer, segments, None if k < 0 else k, None, sg)

        return step

    def _apply(self, optimizer, grads, loss, clip, step, epoch, batch):
        """One optimizer update, refused (with the parameters left as they were) if anything is not finite."""
        if not math.isfinite(loss):
            raise _diverged(f"the loss became {loss}", step, epoch, batch)
        if grads is None:
            raise _diverged("the gradient at the outputs became non-finite", step, epoch, batch)
        if clip is not None:
            clip_grad_norm(grads, clip)
        # The optimizer checks every gradient and updated value before it writes any: a refused
        # update leaves parameters and optimizer state as they were.
        if not optimizer.step(dict(self.params.items()), grads):
            raise _diverged(_update_refused(grads), step, epoch, batch)

    def _stopped(self, loop, status, batch, value, epoch):
        """The DivergenceError of a stop of the compiled loop (the update it refused was not applied)."""
        step = loop.optimizer.steps + 1
        if status == compiled.LOSS_NOT_FINITE:
            raise _diverged(f"the loss became {value}", step, epoch, batch)
        if status == compiled.OUTPUT_GRADIENT_NOT_FINITE:
            raise _diverged("the gradient at the outputs became non-finite", step, epoch, batch)
        raise _diverged(_update_refused(loop.flat.views(loop.grads)), step, epoch, batch)

    def save(self, path, **training):
        """Write the model to ``path`` (.npz), atomically; :func:`fastrnn.load` reads it back."""
        from . import io  # noqa: PLC0415

        io.save(self, path, **training)

    def __repr__(self):
        return (f"Model({self.core!r}, {self.output_size}, loss={self.loss.name!r}, readout={self.readout!r}, "
                f"reduction={self.reduction!r}, seed={self.seed})")


def _diverged(what, step, epoch, batch):
    return DivergenceError(f"fit: {what} at step {step} (epoch {epoch + 1}, batch {batch + 1}); training stopped, "
                           f"and the model keeps the parameters it had before this step")


def _update_refused(grads):
    bad = [name for name, g in grads.items() if not np.isfinite(g).all()]
    return f"the gradient of {bad[0]!r} became non-finite" if bad else "the update would make the parameters non-finite"


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
        from tqdm.auto import tqdm  # noqa: PLC0415
    except ImportError:
        raise ImportError("progress=True needs tqdm: pip install 'fastrnn[examples]'") from None
    return tqdm(total=total, unit="batch", leave=False)
