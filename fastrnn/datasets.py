"""The classic tasks' data, generated or read from installed packages (no network).

Every function returns samples-first arrays, ready for :meth:`fastrnn.Model.fit`:
``X (N, T, I)`` and targets shaped for the task's loss.
"""

import collections
import re
from pathlib import Path

import numpy as np

from . import _validation as v


def binary_addition(n_train, n_test, *, bits=8, seed=0):
    """Pairs (a, b) with a + b < 2**bits, fed least-significant bit first (Trask's classic task).

    Returns ``(X_train, Y_train), (X_test, Y_test)`` with X (N, bits, 2): the bits of a and b at
    each step, and Y (N, bits, 1): the bits of a + b. The test pairs are disjoint from the
    training pairs.
    """
    n_train = v.check_positive_int("n_train", n_train)
    n_test = v.check_positive_int("n_test", n_test)
    half = 2 ** (v.check_positive_int("bits", bits) - 1)  # a, b < 2**(bits-1): the sum fits in bits
    if n_train + n_test > half * half:
        raise ValueError(f"n_train + n_test: expected at most {half * half} distinct pairs for {bits} bits, "
                         f"got {n_train + n_test}")
    rng = np.random.default_rng(seed)
    pairs = rng.choice(half * half, size=n_train + n_test, replace=False)
    a, b = pairs // half, pairs % half
    weights = 1 << np.arange(bits)  # least-significant bit first

    def to_bits(values):
        return ((values[:, None] & weights) > 0).astype(np.float64)

    X = np.stack([to_bits(a), to_bits(b)], axis=2)
    Y = to_bits(a + b)[:, :, None]
    return (X[:n_train], Y[:n_train]), (X[n_train:], Y[n_train:])


def sequence_sum(n, T, *, seed=0):
    """Running sums: x_t ~ U(-1, 1), target y_t = x_0 + ... + x_t. Returns X (n, T, 1), Y (n, T, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(v.check_positive_int("n", n), v.check_positive_int("T", T), 1))
    return X, np.cumsum(X, axis=1)


def digits(*, test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8x8 digits, each image a sequence of its 8 rows (pixel values / 16).

    Returns ``(X_train, y_train), (X_test, y_test)`` with X (N, 8, 8) and integer labels (N,).
    Needs scikit-learn (``pip install 'fastrnn[examples]'``); the data ship with it.
    """
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415
    except ImportError:
        raise ImportError("the digits task needs scikit-learn: pip install 'fastrnn[examples]'") from None
    data = load_digits()
    X = data.images.astype(np.float64) / 16.0
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return (X[train], y[train]), (X[test], y[test])


def recall(n, T, *, noise=2.0, seed=0):
    """A bit to remember over T steps: step 0 shows it (feature 0 = ±1, feature 1 = 1, a marker),
    the later steps show only noise N(0, noise²) in feature 2; the label, asked for at the last
    step, is the bit. Returns X (n, T, 3) and labels (n,) in {0, 1}.
    """
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, v.check_positive_int("n", n))
    X = np.zeros((n, v.check_positive_int("T", T), 3))
    X[:, 0, 0] = 2.0 * bits - 1.0
    X[:, 0, 1] = 1.0
    X[:, 1:, 2] = noise * rng.standard_normal((n, T - 1))
    return X, bits


def tokenize(text):
    """Lower-case words and the punctuation marks . , ; : ? ! as tokens."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?|[.,;:?!]", text.lower())


def builtin_text():
    """English text that ships with Python: the standard library's ``pydoc_data`` help topics."""
    from pydoc_data.topics import topics  # noqa: PLC0415

    return "\n".join(topics[key] for key in sorted(topics))


def read_text(path):
    """A user's text file (UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist")
    return path.read_text(encoding="utf-8")


class Vocabulary:
    """The ``size - 1`` most frequent tokens plus ``"<unk>"`` (id 0) for all others."""

    UNKNOWN = "<unk>"

    def __init__(self, tokens, size):
        size = v.check_positive_int("vocab_size", size)
        counts = collections.Counter(tokens)
        # Ties broken alphabetically, so the vocabulary does not depend on dict order.
        ranked = sorted(counts, key=lambda token: (-counts[token], token))[:size - 1]
        self.tokens = [self.UNKNOWN, *ranked]
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        return np.array([self.index.get(token, 0) for token in tokens], dtype=np.int64)


def next_word(text, *, vocab_size=200, seq_len=16, max_sequences=None, test_fraction=0.1, seed=0,
              dtype="float64"):
    """Next-word prediction data: one-hot words in, the id of the following word as target.

    The token stream is cut into non-overlapping windows of ``seq_len + 1`` tokens; input step t
    is word t of a window (one-hot, ``vocab_size`` features), its target word t + 1.

    Returns ``(X_train, Y_train), (X_test, Y_test), vocabulary`` with X (N, seq_len, vocab_size)
    and Y (N, seq_len) integer ids.
    """
    tokens = tokenize(text)
    vocab = Vocabulary(tokens, vocab_size)
    ids = vocab.encode(tokens)
    seq_len = v.check_positive_int("seq_len", seq_len)
    n = (len(ids) - 1) // seq_len
    if n < 2:
        raise ValueError(f"text: expected at least {2 * seq_len + 1} tokens for two sequences of {seq_len}, "
                         f"got {len(ids)}")
    inputs = ids[:n * seq_len].reshape(n, seq_len)
    targets = ids[1:n * seq_len + 1].reshape(n, seq_len)
    order = np.random.default_rng(seed).permutation(n)
    if max_sequences is not None:
        order = order[:max_sequences]
    n_test = max(1, int(round(test_fraction * len(order))))
    eye = np.eye(len(vocab), dtype=dtype)

    def part(idx):
        return eye[inputs[idx]], targets[idx]

    return part(order[n_test:]), part(order[:n_test]), vocab
