"""The model: a recurrent core, a per-step linear head and a loss; its predictions, its
evaluation, and the gradients of one TBPTT window (:mod:`fastrnn.training` fits it).

Data are samples first, as in scikit-learn and Keras: ``X`` is (N, T, I); the core sees each
batch time-major, (T, B, I).
"""

import math

import numpy as np

from . import _validation as v
from . import files, layer, training
from ._params import PrefixedParams
from .flat import FlatParameters
from .layer import Layer
from .losses import LOSSES
from .metrics import Metrics, WindowResult


class _Head:
    """The per-step linear read-out z = y W^T + b; ``params`` is ``weight (O, H)``, ``bias (O,)``."""

    def __init__(self, params):
        self.params = params


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
        if not isinstance(core, Layer):
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
        self._flat = FlatParameters(self) if FlatParameters.applies(core) else None

    dtype = property(lambda self: self.core.dtype)
    backend = property(lambda self: self.core.backend)

    # -- data ---------------------------------------------------------------------------------

    def checked_inputs(self, X, name="X"):
        """X as an (N, T, input_size) array of the model's dtype, or a ValueError/TypeError naming it."""
        return v.as_float_array(name, X, self.dtype, (None, None, self.core.input_size), "N, T, input_size")

    def checked_targets(self, Y, N, T, name="Y"):
        """Y checked against the loss, the readout and N, T: integer classes or float targets."""
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
    def time_major(a):
        """(N, T, ...) -> (T, N, ...), C-contiguous."""
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

    def window_gradients(self, x, target, state, window, start, end, truncate, inject=None):
        """One TBPTT window: forward over steps [window, end) from ``state``; backward of the losses
        of [start, end).

        ``x`` (T, B, I) and ``target`` ((T, B, ...), or (B, ...) for "last") are the batch's,
        time-major. ``inject(final_state)``, if given, returns a gradient to inject at the
        window's final state (synthetic gradients). Returns a
        :class:`~fastrnn.metrics.WindowResult` whose ``grads`` are those of the window's loss as
        the reduction divides it, or None when the loss is not finite.
        """
        T = x.shape[0]
        y, final, tape = self.core.forward(x[window:end], state)
        has_loss = self.readout == "all" or end == T
        if not has_loss and inject is None:
            # Nothing reaches this window (an early one of readout="last"): its gradient is zero,
            # and the update after it still counts (so TBPTT equals synthetic gradients with M = 0).
            return WindowResult(0.0, 0, 0, 0, {name: np.zeros_like(p) for name, p in self.params.items()}, final,
                                None)
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
                return WindowResult(value * norm, count, correct, judged, None, final, None)  # diverged: fit stops
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
        return WindowResult(value * norm, count, correct, judged, grads, final, dstart)

    def normaliser(self, count):
        """What the summed loss of ``count`` positions is divided by before differentiation."""
        return count if self.reduction == "mean" else 1

    # -- public -------------------------------------------------------------------------------

    def predict(self, X, batch_size=256):
        """The head's output through the loss's link: class probabilities (softmax), sigmoid
        probabilities, or raw values (mse).

        Returns an array of shape (N, T, O) for ``readout="all"``, (N, O) for ``"last"``.
        """
        X = self.checked_inputs(X)
        outputs = []
        for lo in range(0, len(X), batch_size):
            z = self._logits(self.time_major(X[lo:lo + batch_size]))
            outputs.append(self.loss.link(z if self.readout == "last" else np.swapaxes(z, 0, 1)))
        return np.concatenate(outputs)

    def evaluate(self, X, Y, batch_size=256):
        """Mean loss over all positions, and accuracy where the loss has one (not for mse)."""
        X = self.checked_inputs(X)
        Y = self.checked_targets(Y, len(X), X.shape[1])
        metrics = Metrics()
        for lo in range(0, len(X), batch_size):
            z = self._logits(self.time_major(X[lo:lo + batch_size]))
            target = Y[lo:lo + batch_size]
            if self.readout == "all":
                target = self.time_major(target)
            count = z.shape[0] * (1 if self.readout == "last" else z.shape[1])
            value, _ = self.loss.value_and_grad(z, target, count)
            metrics.add(value * count, count, *(self.loss.correct(z, target) if self.loss.has_accuracy else ()))
        return metrics.as_dict(self.loss.has_accuracy)

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
            in :mod:`fastrnn.synthetic_gradients`. ``True`` means ``SyntheticGradients()``; pass your own
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
        return training.fit(self, X, Y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, tbptt=tbptt,
                            truncate=truncate, clip=clip, validation=validation, progress=progress,
                            checkpoint=checkpoint, resume=resume, synthetic_gradients=synthetic_gradients,
                            executor=executor, shards=shards)

    def training_step(self, X, Y, *, optimizer="adam", tbptt=None, truncate=None, synthetic_gradients=None):
        """A function that runs one training update on the batch (X, Y), checked and laid out
        once: what :meth:`fit` does per batch, for timing it (``fastrnn train`` does). The
        function returns the update's :class:`~fastrnn.metrics.Metrics`."""
        return training.training_step(self, X, Y, optimizer=optimizer, tbptt=tbptt, truncate=truncate,
                                      synthetic_gradients=synthetic_gradients)

    # -- files --------------------------------------------------------------------------------

    def describe(self):
        """A JSON-able description of the architecture, head and loss (not the parameters)."""
        return {"core": self.core.describe(), "dtype": self.dtype.name, "output_size": self.output_size,
                "loss": self.loss.name, "readout": self.readout, "reduction": self.reduction}

    @classmethod
    def from_description(cls, description, backend, seed=0):
        """The model :meth:`describe` describes, with fresh parameters."""
        core = layer.build(description["core"], description["dtype"], backend)
        # Files written before the reduction option existed were all "mean".
        return cls(core, description["output_size"], loss=description["loss"], readout=description["readout"],
                   reduction=description.get("reduction", "mean"), seed=seed)

    def save(self, path, **checkpoint):
        """Write the model to ``path`` (.npz), atomically; :func:`fastrnn.load` reads it back."""
        files.save(self, path, **checkpoint)

    def __repr__(self):
        return (f"Model({self.core!r}, {self.output_size}, loss={self.loss.name!r}, readout={self.readout!r}, "
                f"reduction={self.reduction!r}, seed={self.seed})")


def load(path, *, backend="numba"):
    """Read a model written by :meth:`Model.save` (or a :meth:`Model.fit` checkpoint).

    Parameters
    ----------
    path : str or path
    backend : {"numba", "numpy"}
        Which side the restored model runs on.

    Raises
    ------
    ValueError
        If the file is not a fastrnn model, or its parameters do not fit its architecture.
    """
    arrays, meta = files.read(path)
    return files.build(Model, arrays, meta, path, backend)
