"""Helpers the tests share, in one place: tolerances per dtype, comparisons, the kernel-vs-reference
pair, finite differences, test files, a recording optimizer."""

import gzip
import struct

import numpy as np

from fastrnn import datasets
from fastrnn.optim import Optimizer
from fastrnn.registry import make_inputs

#: The dtypes and backends every test of both runs over (the ``dtype`` and ``backend`` fixtures).
DTYPES = ("float64", "float32")
BACKENDS = ("numba", "numpy")

# Tolerance of a kernel-vs-reference comparison, relative to the magnitude of the compared
# values. Both sides use the same formulas in a different summation order (GEMMs against
# per-step products), so the difference is a few ulp times the number of summed terms.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-4}


def assert_close(actual, desired, dtype, what):
    """Compare arrays with the tolerance of ``dtype``, scaled by the magnitude of ``desired``."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_state_close(actual, desired, dtype, what):
    if isinstance(desired, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(desired), what
        for i, (a, d) in enumerate(zip(actual, desired)):
            assert_close(a, d, dtype, f"{what}[{i}]")
    else:
        assert_close(actual, desired, dtype, what)


def run_pair(case, T, B, I, H, dtype, truncate, with_state, seed=0):
    cells = [case.make(I, H, dtype=dtype, seed=seed, backend=b) for b in ("numba", "numpy")]
    inputs = make_inputs(cells[0], T, B, seed=seed + 1)
    state = inputs["state"] if with_state else None
    dstate = inputs["dstate"] if with_state else None
    results = []
    for cell in cells:
        y, final, tape = cell.forward(inputs["x"], state)
        grads, dx, dstate0 = cell.backward(tape, inputs["dy"], dstate, truncate=truncate)
        results.append((y, final, grads, dx, dstate0))
    return results


def assert_pair(results, dtype, what):
    (y, final, grads, dx, dstate0), (ry, rfinal, rgrads, rdx, rdstate0) = results
    assert_close(y, ry, dtype, f"{what}: y")
    assert_state_close(final, rfinal, dtype, f"{what}: final state")
    assert grads.keys() == rgrads.keys()
    for name in rgrads:
        assert_close(grads[name], rgrads[name], dtype, f"{what}: grads[{name}]")
    assert_close(dx, rdx, dtype, f"{what}: dx")
    assert_state_close(dstate0, rdstate0, dtype, f"{what}: dstate")


def numeric_gradient(loss, array, eps=1e-6):
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = loss()
        flat[i] = old - eps
        down = loss()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def idx_bytes(array, code=0x08):
    """An IDX file's bytes holding ``array`` with the type code ``code``."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_mnist(directory, n_train=5, n_test=3, compressed=False):
    """The four MNIST IDX files of random images and labels in ``directory``; returns the arrays."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    codes = [0x08, 0x08, 0x08, 0x08]
    for name, array, code in zip(datasets.MNIST_FILES, arrays, codes):
        data = idx_bytes(array, code)
        if compressed:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


class Recorder(Optimizer):
    """An optimizer that leaves the parameters alone and keeps every gradient it was given."""

    def __init__(self):
        super().__init__(lr=0.0)
        self.grads = []

    def step(self, params, grads):
        self.steps += 1
        self.grads.append({k: g.copy() for k, g in grads.items()})
        return True
