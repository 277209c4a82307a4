"""Input checks of the public layer. Kernels never see unchecked input.

Every error names the argument, what was expected and what was given.
"""

import numbers

import numpy as np

from .kernels.checks import all_finite

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: The bits of ``ndarray.flags.num`` (NumPy's NPY_ARRAY_C_CONTIGUOUS, _ALIGNED, _WRITEABLE) of a
#: plain array: what the kernels are compiled for. Numba types a read-only or unaligned array
#: apart and would compile every kernel again for it (seconds), so such input is copied instead.
PLAIN = 0x1 | 0x100 | 0x400

#: Up to this many elements the finiteness check is the compiled loop :func:`all_finite` (0.3
#: against NumPy's 2.2 µs at 256 elements); above it NumPy's vectorised check (60 against the
#: loop's 140 µs at 2^18).
SMALL = 4096


def check_dtype(dtype):
    """Return the cell dtype (float32 or float64) named by ``dtype``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {resolved.name!r}")
    return resolved


def check_positive_int(name, value):
    """A Python or NumPy integer >= 1 (bools are rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


def check_finite_number(name, value, minimum=None):
    """A real, finite number (bools are rejected), at least ``minimum`` if given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected a finite number >= {minimum}, got {value!r}")
    return value


def check_seed(value):
    """A Python or NumPy integer >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed: expected None or an int >= 0, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"seed: expected None or an int >= 0, got {value}")
    return int(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_truncate(truncate):
    """None -> -1 (full BPTT); an int k >= 0 -> k. Bools, floats and strings are a TypeError."""
    if truncate is None:
        return -1
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, numbers.Integral):
        raise TypeError(f"truncate: expected None or an int >= 0, got {type(truncate).__name__} {truncate!r}")
    if truncate < 0:
        raise ValueError(f"truncate: expected None or an int >= 0, got {truncate}")
    return int(truncate)


def _describe(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_float_array(name, value, dtype, shape, hint=""):
    """Convert ``value`` to a C-contiguous array of ``dtype`` and check its shape and finiteness.

    ``shape`` is a tuple whose entries are ints or None (any size >= 1). Integer input is converted;
    bool, complex, object and other non-numeric data raise TypeError. The result is always a
    new array or one the caller may keep: kernels never write into it. It is always
    :data:`PLAIN` (C-contiguous, aligned, writeable). Messages are formatted
    only when raising: this runs on every call of a cell.
    """
    array = value if type(value) is np.ndarray else np.asarray(value)
    # An array already in the kernels' dtype and layout (the common case) skips the dtype-kind
    # check and the conversion.
    converted = array.dtype is not dtype or array.flags.num & PLAIN != PLAIN
    if converted and array.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real floating-point (or integer) data, got dtype {array.dtype.name}")
    if array.ndim != len(shape):
        raise ValueError(f"{name}: expected a {len(shape)}-d array of shape {_expected(shape, hint)}, "
                         f"got a {array.ndim}-d array of shape {_describe(array.shape)}")
    for want, got in zip(shape, array.shape):
        if (want is None and got < 1) or (want is not None and want != got):
            raise ValueError(f"{name}: expected shape {_expected(shape, hint)}, got {_describe(array.shape)}")
    if converted:  # a copy even where the layout alone would allow none: see PLAIN
        array = np.array(array, dtype=dtype, order="C")
    finite = all_finite(array) if array.size <= SMALL else np.isfinite(array).all()
    if not finite:
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _expected(shape, hint):
    return _describe(["*" if s is None else s for s in shape]) + (f" ({hint})" if hint else "")


def check_param(name, array, dtype, shape):
    """Parameters are live arrays the user may replace; check one before a kernel reads it."""
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
        got = (f"{type(array).__name__}" if not isinstance(array, np.ndarray)
               else f"{array.dtype.name} array of shape {_describe(array.shape)}")
        raise ValueError(f"params[{name!r}]: expected a {dtype.name} array of shape {_describe(shape)}, got {got}")
    if not array.flags.c_contiguous:
        raise ValueError(f"params[{name!r}]: expected a C-contiguous array (assign into it with [...] instead)")


def as_gradient(name, value, param):
    """A gradient for ``param``: real numbers of exactly its shape, as a C-contiguous array of its dtype.

    Non-finite values pass (the optimizers refuse the update themselves, and fit reports it as a
    divergence); a gradient of another size would make an update read past its end.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real floating-point (or integer) data, got dtype {array.dtype.name}")
    if array.shape != param.shape:
        raise ValueError(f"{name}: expected shape {_describe(param.shape)} (its parameter's), "
                         f"got {_describe(array.shape)}")
    return np.ascontiguousarray(array, dtype=param.dtype)
