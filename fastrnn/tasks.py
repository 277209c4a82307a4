"""The classic tasks, built in: data, a model, training settings and the target each must reach.

``fastrnn train TASK`` runs them; the tests train each one at a small size. A task's
``size`` scales its data ("full" for the command line, "small" for the tests).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import datasets
from .model import Model
from .optim import Adam, RMSProp
from .registry import BY_CELL_NAME
from .stacks import DilatedRNN
from .synthetic_gradients import SyntheticGradients


@dataclass
class Task:
    """One task: ``data(size, seed)`` -> (train, test); ``model(cell, hidden, backend, seed)``."""

    name: str
    description: str
    cell: str
    hidden: int
    epochs: int
    fit_options: dict = field(default_factory=dict)
    #: What the task must reach on its test data (for text: below the unigram perplexity); None
    #: for a task that is measured, not passed (recall-sg: see :func:`compare`).
    target: float = 0.0
    higher_is_better: bool = True
    #: Whether ``size="small"`` still reaches the target in the task's epochs (the tests train
    #: those); pixel-MNIST needs its full data and far more epochs than a test can run.
    small_reaches_target: bool = True

    def data(self, size="full", seed=0):
        raise NotImplementedError

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=None):
        raise NotImplementedError

    def metric(self, model, test):
        """(name, value) of the task's test metric."""
        raise NotImplementedError

    def goal(self, train, test):
        return self.target

    def report(self, model, train, test):
        """The test metric, the target and whether it was reached."""
        name, value = self.metric(model, test)
        target = self.goal(train, test)
        if target is None:
            return {"metric": name, "value": value, "target": None, "reached": None}
        reached = value >= target if self.higher_is_better else value < target
        return {"metric": name, "value": value, "target": target, "reached": bool(reached)}

    def fit_kwargs(self, synthetic=True):
        """Keyword arguments of :meth:`Model.fit`, with a fresh optimizer (and synthetic-gradient
        module); ``synthetic=False`` drops synthetic gradients, leaving plain TBPTT."""
        kwargs = {key: (value() if callable(value) else value) for key, value in self.fit_options.items()}
        if not synthetic:
            kwargs.pop("synthetic_gradients", None)
        return kwargs


def _cell(name, input_size, hidden, backend, seed, dtype="float64"):
    if name not in BY_CELL_NAME:
        raise ValueError(f"cell: expected one of {', '.join(BY_CELL_NAME)}, got {name!r}")
    return BY_CELL_NAME[name].make(input_size, hidden, dtype=dtype, backend=backend, seed=seed)


class BinaryAddition(Task):
    def data(self, size="full", seed=0):
        n_train, n_test = (3000, 1000) if size == "full" else (1000, 300)
        return datasets.binary_addition(n_train, n_test, seed=seed)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=2):
        core = _cell(cell or self.cell, 2, hidden or self.hidden, backend, seed)
        return Model(core, 1, loss="sigmoid_cross_entropy", seed=seed)

    def metric(self, model, test):
        return "held-out bit accuracy", model.evaluate(*test)["accuracy"]


class SequenceSum(Task):
    def data(self, size="full", seed=0):
        n, T = (3000, 20) if size == "full" else (800, 12)
        return datasets.sequence_sum(n, T, seed=seed), datasets.sequence_sum(n // 5, T, seed=seed + 1)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=1):
        H = hidden or self.hidden
        cells = [_cell(cell or self.cell, 1, H, backend, seed), _cell(cell or self.cell, H, H, backend, seed + 1)]
        return Model(DilatedRNN(cells, [1, 1]), 1, loss="mse", seed=seed)

    def metric(self, model, test):
        X, Y = test
        residual = ((model.predict(X) - Y) ** 2).sum()
        return "test R^2", float(1.0 - residual / ((Y - Y.mean()) ** 2).sum())


class Digits(Task):
    def data(self, size="full", seed=0):
        return datasets.digits(seed=seed)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=8):
        H = hidden or self.hidden
        cells = [_cell(cell or self.cell, 8, H, backend, seed), _cell(cell or self.cell, H, H, backend, seed + 1)]
        return Model(DilatedRNN(cells, [1, 2]), 10, readout="last", seed=seed)

    def metric(self, model, test):
        return "test accuracy", model.evaluate(*test)["accuracy"]


class Text(Task):
    #: Set by ``fastrnn train text --text FILE``; the standard library's help topics otherwise.
    path = None

    def data(self, size="full", seed=0):
        text = datasets.builtin_text() if self.path is None else datasets.read_text(self.path)
        limit = None if size == "full" else 600
        (X, Y), test, vocab = datasets.next_word(text, vocab_size=200, seq_len=16, max_sequences=limit, seed=seed)
        self.vocabulary = vocab
        return (X, Y), test

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=200):
        core = _cell(cell or self.cell, input_size, hidden or self.hidden, backend, seed)
        return Model(core, input_size, seed=seed)

    def metric(self, model, test):
        """Test perplexity, exp(mean cross-entropy), against the unigram model's on the same words."""
        return "test perplexity", math.exp(model.evaluate(*test)["loss"])

    def goal(self, train, test):
        """The unigram model's test perplexity: a model that learnt nothing of context gets this."""
        counts = np.bincount(train[1].ravel(), minlength=len(self.vocabulary)) + 1.0  # add-one smoothing
        p = counts / counts.sum()
        return float(np.exp(-np.mean(np.log(p[test[1].ravel()]))))


class Digits01(Digits):
    """Digits 0 and 1 only, a vanilla RNN reading the rows, label at the last step."""

    def data(self, size="full", seed=0):
        (X, y), (Xt, yt) = datasets.digits(seed=seed)
        return (X[y < 2], y[y < 2]), (Xt[yt < 2], yt[yt < 2])

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=8):
        core = _cell(cell or self.cell, 8, hidden or self.hidden, backend, seed)
        return Model(core, 2, readout="last", seed=seed)


class Recall(Task):
    """The label is a bit shown at step 0 and asked for at step T-1, T = 6K: plain TBPTT(K)
    never backpropagates from the label to the step that shows it."""

    def data(self, size="full", seed=0):
        n = 1000 if size == "full" else 600
        return datasets.recall(n, 24, seed=seed), datasets.recall(n // 2, 24, seed=seed + 1)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=3):
        return Model(_cell(cell or self.cell, 3, hidden or self.hidden, backend, seed), 2, readout="last", seed=seed)

    def metric(self, model, test):
        return "test accuracy", model.evaluate(*test)["accuracy"]


class _MNIST(Task):
    """A task on MNIST: the ``data`` extra's 5,000-image sample, or the full set from ``path``."""

    #: Set by ``fastrnn train TASK --mnist DIR``: a directory with the four IDX files.
    path = None
    #: Images per split at ``size="small"`` (the tests), after the task's own selection.
    small = (512, 256)

    def images(self, size, seed):
        (X, y), (Xt, yt) = datasets.mnist(self.path, seed=seed)
        (X, y), (Xt, yt) = self.select(X, y), self.select(Xt, yt)
        if size != "full":
            (X, y), (Xt, yt) = (X[:self.small[0]], y[:self.small[0]]), (Xt[:self.small[1]], yt[:self.small[1]])
        return (X, y), (Xt, yt)

    def select(self, X, y):
        return X, y

    def metric(self, model, test):
        return "test accuracy", model.evaluate(*test)["accuracy"]


class MNIST01(_MNIST):
    """MNIST's 0 and 1 digits, each image a sequence of its 28 rows (pixels / 255), as the
    classic synthetic-gradient program reads them; label at the last step."""

    small = (800, 200)  # all of the sample's 0s and 1s: training them takes a second

    def select(self, X, y):
        keep = y < 2
        return X[keep], y[keep]

    def data(self, size="full", seed=0):
        (X, y), (Xt, yt) = self.images(size, seed)
        return (X / 255.0, y), (Xt / 255.0, yt)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=28):
        core = _cell(cell or self.cell, 28, hidden or self.hidden, backend, seed)
        return Model(core, 2, readout="last", seed=seed)


#: The permutation of permuted pixel-MNIST: one fixed order of the 784 pixels, whatever the seed.
PERMUTATION_SEED = 784


class PixelMNIST(_MNIST):
    """Pixel-by-pixel MNIST (Chang et al. 2017): one standardised pixel per step (T = 784), read
    row by row or, with ``permute``, in one fixed random order; 9 layers of 20 units, dilations 1,
    2, ..., 256, float32, label at the last step."""

    permute = False
    layers = 9

    def data(self, size="full", seed=0):
        """Pixels standardised by the training images' mean and standard deviation (most are 0:
        on [0, 1] the network learnt more slowly, 56% against 65% test accuracy after 17 epochs)."""
        order = np.random.default_rng(PERMUTATION_SEED).permutation(784) if self.permute else np.arange(784)
        (X, y), (Xt, yt) = self.images(size, seed)
        mean, std = X.mean(dtype=np.float64), X.std(dtype=np.float64)

        def pixels(images):
            flat = images.reshape(len(images), 784)[:, order]
            return ((flat - mean) / std).astype(np.float32)[:, :, None]

        return (pixels(X), y), (pixels(Xt), yt)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=1):
        H = hidden or self.hidden
        cells = [_cell(cell or self.cell, 1 if i == 0 else H, H, backend, seed + i, dtype="float32")
                 for i in range(self.layers)]
        return Model(DilatedRNN(cells, [2 ** i for i in range(self.layers)]), 10, readout="last", seed=seed)


class Copy(Task):
    """The copy task (Graves et al. 2014) with the curriculum of Jaderberg et al. 2016: a sequence
    of ``length`` random 8-bit vectors, a delimiter, then the vectors asked back. Training starts
    at length 1 on fresh data; every ``per_stage`` updates the bits error is measured on a fresh
    batch, and once it is below ``threshold`` wrong bits per output step the length grows by one.
    The result is the longest length solved within a budget of updates (:meth:`curriculum`)."""

    threshold = 0.15
    per_stage = 50
    batch = 32
    evaluation = 256

    def data(self, size="full", seed=0, length=1):
        n = self.batch * self.per_stage
        return datasets.copy_task(n, length, seed=seed), datasets.copy_task(self.evaluation, length, seed=seed + 1)

    def model(self, cell=None, hidden=None, backend="numba", seed=0, input_size=9):
        core = _cell(cell or self.cell, 9, hidden or self.hidden, backend, seed)
        return Model(core, 8, loss="sigmoid_cross_entropy", seed=seed)

    def metric(self, model, test):
        return "wrong bits per output step", bits_error(model, *test)

    def curriculum(self, tbptt, synthetic, *, updates=20_000, seed=0, cell=None, hidden=None, backend="numba",
                   report=None):
        """Train one model through the curriculum: plain TBPTT(``tbptt``) (None: full BPTT), or with
        synthetic gradients between its windows.

        Returns {"longest": the longest length solved (0 for none), "updates": updates made,
        "solved_at": the update count at which each length up to "longest" was solved,
        "error": the last bits error measured, "at": the length it was measured at (the longest
        solved if the last stage solved it, else the one after)}. ``report(length, updates)`` is
        called as each length is solved.
        """
        model = self.model(cell, hidden, backend, seed)
        optimizer = self.fit_kwargs()["optimizer"]
        module = SyntheticGradients() if synthetic else None
        rng = np.random.default_rng(seed)
        length, done, solved_at, error, at = 1, 0, [], math.nan, 1
        while done < updates:
            train, test = self.data(seed=int(rng.integers(2**31)), length=length)
            model.fit(*train, epochs=1, batch_size=self.batch, optimizer=optimizer, tbptt=tbptt,
                      synthetic_gradients=module, progress=False)
            done += self.per_stage
            error, at = bits_error(model, *test), length
            if error < self.threshold:
                solved_at.append(done)
                if report is not None:
                    report(length, done)
                length += 1
        return {"longest": len(solved_at), "updates": done, "solved_at": solved_at, "error": error, "at": at}


def bits_error(model, X, Y):
    """Wrong bits per output step of the copy task: the outputs after the delimiter, each bit
    predicted as 1 where its probability exceeds 1/2."""
    length = (X.shape[1] - 1) // 2
    wrong = (model.predict(X)[:, length + 1:] > 0.5) != (Y[:, length + 1:] > 0.5)
    return float(wrong.sum(axis=-1).mean())


TASKS = {task.name: task for task in (
    BinaryAddition("binary-addition", "8-bit binary addition, bits least-significant first (sigmoid RNN)",
                   cell="rnn-sigmoid", hidden=16, epochs=12, target=1.0,
                   fit_options={"batch_size": 16, "optimizer": lambda: Adam(0.01)}),
    SequenceSum("sequence-sum", "running sum of a random sequence, regression (Intersection RNN stack)",
                cell="irnn", hidden=32, epochs=15, target=0.95,
                fit_options={"batch_size": 32, "optimizer": lambda: Adam(0.005)}),
    Digits("digits", "scikit-learn's 8x8 digits, rows as steps (Dilated RNN, dilations 1, 2)",
           cell="gru", hidden=32, epochs=15, target=0.90,
           fit_options={"batch_size": 32, "optimizer": lambda: Adam(0.01)}),
    Text("text", "next-word prediction on the standard library's help text (tanh RNN, truncate=4)",
         cell="rnn-tanh", hidden=64, epochs=8, target=0.0, higher_is_better=False,
         fit_options={"batch_size": 32, "optimizer": lambda: Adam(0.005), "truncate": 4}),
    Digits01("digits01-sg", "digits 0 vs 1, rows as steps, label at the last step; synthetic gradients, K = 2",
             cell="rnn-tanh", hidden=32, epochs=10, target=0.95,
             fit_options={"batch_size": 16, "optimizer": lambda: Adam(0.01), "tbptt": 2,
                          "synthetic_gradients": SyntheticGradients}),
    Recall("recall-sg", "recall a bit from step 0 at step 23 (T = 24); synthetic gradients, K = 4",
           cell="rnn-tanh", hidden=32, epochs=30, target=None,
           fit_options={"batch_size": 32, "optimizer": lambda: Adam(0.003), "tbptt": 4,
                        "synthetic_gradients": SyntheticGradients}),
    MNIST01("mnist01-sg", "MNIST 0 vs 1, 28 rows as steps, label at the last step; synthetic gradients, K = 7",
            cell="rnn-tanh", hidden=128, epochs=20, target=0.99,
            # The module learns at 3e-4 here, not the default 1e-5: 20 epochs of 800 images are
            # only 1,000 updates (fastrnn train mnist01-sg --compare 10: mean final accuracy 0.995).
            fit_options={"batch_size": 16, "optimizer": lambda: Adam(0.0003), "tbptt": 7,
                         "synthetic_gradients": lambda: SyntheticGradients(lr=0.0003)}),
    PixelMNIST("pixel-mnist", "pixel-by-pixel MNIST, T = 784 (Dilated RNN: 9 GRU layers of 20, dilations 1..256)",
               # 30 epochs (11 minutes on two cores) reach 77% on the 5,000-image sample; 93% took
               # 172 epochs there (README, "MNIST"): the default is a run one waits for, not that.
               cell="gru", hidden=20, epochs=30, target=0.93, small_reaches_target=False,
               fit_options={"batch_size": 128, "optimizer": lambda: RMSProp(0.001)}),
    Copy("copy", "the copy task with a curriculum on its length (LSTM); TBPTT(K), or synthetic gradients by "
         "--synthetic-gradients", cell="lstm", hidden=64, epochs=1, target=None,
         fit_options={"optimizer": lambda: Adam(0.003)}),
)}


#: The truncations of the copy-task table (Jaderberg et al.'s Table 1).
COPY_TRUNCATIONS = (2, 3, 4, 5, 8)


def compare(task, seeds, *, backend="numba", size="full", epochs=None):
    """Train ``task`` with plain TBPTT(K) and with synthetic gradients for each seed.

    Returns one row per seed: {"seed", "tbptt", "tbptt_best", "sg", "sg_best"} with the final and
    the best per-epoch test accuracy of each variant.
    """
    rows = []
    for seed in seeds:
        train, test = task.data(size, seed=seed)
        row = {"seed": seed}
        for label, synthetic in (("tbptt", False), ("sg", True)):
            model = task.model(backend=backend, seed=seed)
            history = model.fit(*train, epochs=epochs or task.epochs, validation=test, progress=False,
                                **task.fit_kwargs(synthetic=synthetic))
            row[label] = history["val_accuracy"][-1]
            row[f"{label}_best"] = max(history["val_accuracy"])
        rows.append(row)
    return rows
