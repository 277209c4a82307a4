"""The archive of fastrnn's files: named arrays and a JSON description, in one ``.npz``.

This module knows nothing of models (:mod:`fastrnn.files` puts models and checkpoints into
archives). An archive holds its arrays under their names and the description under ``meta``;
it is read with ``allow_pickle=False`` and every member checked before its array is made, so
reading never runs code from a file nor allocates what a damaged or crafted file claims.

Writes are atomic: the file is written beside its destination under a temporary name, flushed
to disk, and renamed over the destination in one step, so a crash mid-write leaves the old file
(or none) in place, never a half-written one.
"""

import json
import math
import os
import tempfile
import zipfile
import zlib
from io import BytesIO

import numpy as np

# No array of an archive may expand to more than _MAX_EXPANSION times the file's size on disk
# (fastrnn writes uncompressed archives; the slack allows for small compressed files of other
# writers).
_MAX_EXPANSION = 64
_EXPANSION_SLACK = 1 << 20


def check_writable(name, path):
    """Fail early, naming ``name`` and ``path``, when ``path`` cannot be written: called before
    training, so that a bad path costs no epoch of work."""
    try:
        target = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a path, got {type(path).__name__}") from None
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise ValueError(f"{name}: cannot write {target!r}: its directory {directory!r} does not exist")
    if os.path.isdir(target):
        raise ValueError(f"{name}: cannot write {target!r}: it is a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write {target!r}: its directory {directory!r} is not writable")
    return target


def _atomic_savez(path, arrays):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastrnn-", suffix=".npz.tmp", dir=directory)
    except OSError as error:  # name the user's path, not the temporary one
        raise type(error)(error.errno, f"cannot write {path!r} ({error.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write(path, arrays, meta):
    """Write the named ``arrays`` and the JSON-able ``meta`` dict to ``path`` (.npz), atomically."""
    _atomic_savez(path, {**arrays, "meta": np.array(json.dumps(meta))})


class _Refused(ValueError):
    """A file fastrnn will not read; the message says why, the caller adds the file's name."""


def _read_array(data, member):
    """One ``.npy`` member: its header checked, and no more memory taken than its bytes hold."""
    stream = BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, TypeError, SyntaxError) as error:
        raise _Refused(f"member {member!r} is not a NumPy array ({error})") from None
    if dtype.hasobject or dtype.kind not in "biufU":
        raise _Refused(f"member {member!r} holds {dtype} data, not numbers or text")
    count = math.prod(shape)
    offset = stream.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise _Refused(f"member {member!r} claims shape {shape} of {dtype} ({count * dtype.itemsize} bytes) but "
                       f"holds {len(data) - offset} bytes")
    array = np.frombuffer(data, dtype, count, offset).reshape(shape, order="F" if fortran else "C")
    return np.array(array, order="C")


def read_archive(path):
    """The named arrays of an ``.npz`` file, read without pickle.

    Every member's header is checked against its size before its array is made, so a damaged or
    crafted file is refused without allocating what it claims. Raises ``FileNotFoundError``, or
    ``ValueError`` naming the file and saying what is wrong.
    """
    try:
        on_disk = os.path.getsize(path)
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(member.file_size for member in members)
            if declared > _MAX_EXPANSION * on_disk + _EXPANSION_SLACK:
                raise _Refused(f"its members claim {declared} bytes, far more than its {on_disk} bytes on disk")
            arrays = {}
            for member in members:
                if not member.filename.endswith(".npy"):
                    raise _Refused(f"member {member.filename!r} is not an array")
                arrays[member.filename[:-4]] = _read_array(archive.read(member), member.filename)
    except FileNotFoundError:
        raise
    except _Refused as error:
        raise ValueError(f"{path}: not a fastrnn model file ({error})") from None
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a fastrnn model file (not an .npz archive: {error})") from None
    except (OSError, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error, OverflowError) as error:
        # NotImplementedError: a damaged header naming an unknown compression; RuntimeError: one
        # claiming encryption; zlib.error, EOFError: a damaged compressed member.
        raise ValueError(f"{path}: not a fastrnn model file (cannot be read: {type(error).__name__}: {error})") \
            from None
    return arrays


def read(path):
    """The arrays and the parsed ``meta`` of an archive (any JSON value; the reader checks it),
    or a ValueError naming the file."""
    arrays = read_archive(path)
    meta = arrays.pop("meta", None)
    if meta is None:
        raise ValueError(f"{path}: not a fastrnn model file (no 'meta' entry)")
    if meta.shape != () or meta.dtype.kind != "U":
        raise ValueError(f"{path}: not a fastrnn model file ('meta' is not text)")
    try:
        meta = json.loads(str(meta))
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path}: not a fastrnn model file (unreadable 'meta': {type(error).__name__})") from None
    return arrays, meta


def section(arrays, prefix):
    """The arrays whose names start with ``prefix``, under the rest of their names."""
    return {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}
