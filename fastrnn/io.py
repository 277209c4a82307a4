"""Saving and loading models (``.npz``), and the checkpoints of :meth:`Model.fit`.

A file holds every parameter under ``param/<key>``, an optional optimizer state under
``optimizer/<slot>/<key>``, and a JSON description under ``meta``: the architecture, the loss,
and for checkpoints the epoch, the history and the optimizer's class and settings. Files are read
with ``allow_pickle=False``: loading never runs code from the file.

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

from . import __version__
from .cells import GRU, LSTM, RNN, UGRNN, IntersectionRNN
from .stacks import Bidirectional, DilatedRNN

FORMAT = "fastrnn.model/1"
CELLS = {cls.__name__: cls for cls in (RNN, GRU, LSTM, UGRNN, IntersectionRNN)}

# A file's description is checked against these before anything it describes is built: no size
# in it may exceed _MAX_SIZE, and its arrays together may not expand to more than _MAX_EXPANSION
# times the file's size on disk (fastrnn writes uncompressed archives; the slack allows for
# small compressed files of other writers).
_MAX_SIZE = 1 << 31
_MAX_EXPANSION = 64
_EXPANSION_SLACK = 1 << 20


def core_spec(core):
    """A JSON-able description of a core's architecture (not its parameters)."""
    if isinstance(core, DilatedRNN):
        return {"kind": "DilatedRNN", "cells": [core_spec(c) for c in core.cells], "dilations": list(core.dilations)}
    if isinstance(core, Bidirectional):
        return {"kind": "Bidirectional", "forward": core_spec(core.forward_cell),
                "backward": core_spec(core.backward_cell)}
    spec = {"kind": type(core).__name__, "input_size": core.input_size, "hidden_size": core.hidden_size}
    if isinstance(core, RNN):
        spec["nonlinearity"] = core.nonlinearity
    return spec


def build_core(spec, dtype, backend):
    """Inverse of :func:`core_spec`, with fresh parameters."""
    kind = spec["kind"]
    if kind == "DilatedRNN":
        return DilatedRNN([build_core(s, dtype, backend) for s in spec["cells"]], spec["dilations"])
    if kind == "Bidirectional":
        return Bidirectional(build_core(spec["forward"], dtype, backend), build_core(spec["backward"], dtype, backend))
    options = {k: val for k, val in spec.items() if k not in ("kind", "input_size", "hidden_size")}
    return CELLS[kind](spec["input_size"], spec["hidden_size"], dtype=dtype, backend=backend, **options)


def model_spec(model):
    """A JSON-able description of a Model's architecture, head and loss (not its parameters)."""
    return {"core": core_spec(model.core), "dtype": model.dtype.name, "output_size": model.output_size,
            "loss": model.loss.name, "readout": model.readout, "reduction": model.reduction}


def build_model(spec, backend, seed=0):
    """Inverse of :func:`model_spec`, with fresh parameters."""
    from .model import Model  # noqa: PLC0415  (model imports this module lazily too)

    core = build_core(spec["core"], spec["dtype"], backend)
    # Files written before the reduction option existed were all "mean".
    return Model(core, spec["output_size"], loss=spec["loss"], readout=spec["readout"],
                 reduction=spec.get("reduction", "mean"), seed=seed)


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


def save(model, path, *, optimizer=None, epoch=None, history=None, synthetic=None):
    """Write ``model`` (and, for a checkpoint, the optimizer state, epoch, history and any
    synthetic-gradient module) to ``path``."""
    meta = {"format": FORMAT, "fastrnn": __version__, **model_spec(model), "seed": model.seed}
    arrays = {f"param/{key}": value for key, value in model.params.items()}
    if optimizer is not None:
        meta["optimizer"] = {"kind": type(optimizer).__name__, "config": optimizer.config()}
        arrays.update({f"optimizer/{key}": value for key, value in optimizer.state_arrays().items()})
    if synthetic is not None:
        meta["synthetic"] = {"scale": synthetic.scale, "lr": synthetic.lr}
        arrays.update({f"sg/{key}": value for key, value in synthetic.params.items()})
        arrays.update({f"sg_optimizer/{key}": value for key, value in synthetic.optimizer.state_arrays().items()})
    if epoch is not None:
        meta["epoch"] = epoch
        meta["history"] = {"metrics": dict(history or {}), "seconds": list(getattr(history, "seconds", []))}
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_savez(path, arrays)


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


def _size(value):
    return type(value) is int and 1 <= value <= _MAX_SIZE


def _spec_shapes(spec, where, layer_kinds, prefix):
    """Check a core description's structure and sizes without building anything.

    Returns the shape of each parameter it implies, under the keys of the built core's
    ``params`` (with ``prefix``), and the core's output size.
    """
    if not isinstance(spec, dict):
        raise _Refused(f"{where} is not a description")
    kind = spec.get("kind")
    if kind == "DilatedRNN" and "DilatedRNN" in layer_kinds:
        cells, dilations = spec.get("cells"), spec.get("dilations")
        if set(spec) != {"kind", "cells", "dilations"} or not isinstance(cells, list) or not cells \
                or not isinstance(dilations, list) or len(dilations) != len(cells) \
                or not all(_size(d) for d in dilations):
            raise _Refused(f"{where}: a DilatedRNN needs a list of cells and as many positive dilations")
        shapes, H = {}, None
        for i, cell in enumerate(cells):
            layer, H = _spec_shapes(cell, f"{where}.cells[{i}]", ("Bidirectional", *CELLS), f"{prefix}{i}.")
            shapes.update(layer)
        return shapes, H
    if kind == "Bidirectional" and "Bidirectional" in layer_kinds:
        if set(spec) != {"kind", "forward", "backward"}:
            raise _Refused(f"{where}: a Bidirectional layer needs a forward and a backward cell")
        (forward, h_f), (backward, h_b) = (_spec_shapes(spec[side], f"{where}.{side}", tuple(CELLS),
                                                        f"{prefix}{side}.") for side in ("forward", "backward"))
        return {**forward, **backward}, h_f + h_b
    if kind in CELLS and kind in layer_kinds:
        options = {"kind", "input_size", "hidden_size"} | ({"nonlinearity"} if kind == "RNN" else set())
        I, H = spec.get("input_size"), spec.get("hidden_size")
        if set(spec) != options or not _size(I) or not _size(H) or \
                (kind == "RNN" and not isinstance(spec["nonlinearity"], str)):
            raise _Refused(f"{where}: a {kind} needs exactly {', '.join(sorted(options - {'kind'}))}, with sizes "
                           f"from 1 to {_MAX_SIZE}")
        shapes = CELLS[kind].shapes_for(I, H)
        return {f"{prefix}{name}": shape for name, shape in shapes.items() if 0 not in shape}, H
    raise _Refused(f"{where}: unknown or misplaced layer kind {kind!r}")


def _check_description(meta, arrays, path):
    """The architecture a file describes must fit the parameters it stores, array for array:
    checked before anything is built, so that claimed sizes cost no memory."""
    try:
        shapes, H = _spec_shapes(meta.get("core"), "core", ("DilatedRNN", "Bidirectional", *CELLS), "core.")
        O = meta.get("output_size")
        if not _size(O):
            raise _Refused(f"output_size {O!r} is not a positive size")
        if meta.get("dtype") not in ("float32", "float64"):
            raise _Refused(f"dtype {meta.get('dtype')!r} is not 'float32' or 'float64'")
        if not all(isinstance(meta.get(key), str) for key in ("loss", "readout")):
            raise _Refused("loss and readout must be names")
        if type(meta.get("seed")) is not int or meta["seed"] < 0:
            raise _Refused(f"seed {meta.get('seed')!r} is not an int >= 0")
    except _Refused as error:
        raise ValueError(f"{path}: the model described in this file is not valid: {error}") from None
    shapes.update({"head.weight": (O, H), "head.bias": (O,)})
    stored = {key.removeprefix("param/") for key in arrays if key.startswith("param/")}
    if stored != set(shapes):
        raise ValueError(f"{path}: parameters {sorted(stored ^ set(shapes))} do not match the architecture")
    for key, shape in shapes.items():
        value = arrays[f"param/{key}"]
        if value.shape != shape or value.dtype != meta["dtype"]:
            raise ValueError(f"{path}: param/{key} has shape {value.shape} and dtype {value.dtype}, expected "
                             f"{shape} and {meta['dtype']}")


def _read(path):
    """The arrays and the parsed ``meta`` of a fastrnn file, or a ValueError saying why not."""
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
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: expected a {FORMAT} file, got format {got!r}")
    _check_description(meta, arrays, path)
    return arrays, meta


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
    return _restore(*_read(path), path, backend)


def _restore(arrays, meta, path, backend):
    """The model described by a file's ``meta``, with its stored parameters checked and copied in."""
    try:
        model = build_model(meta, backend, seed=meta["seed"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: the architecture in this file cannot be built ({error!r})") from None
    expected = set(model.params)
    stored = {key.removeprefix("param/") for key in arrays if key.startswith("param/")}
    if stored != expected:
        raise ValueError(f"{path}: parameters {sorted(stored ^ expected)} do not match the architecture")
    for key in expected:
        value = arrays[f"param/{key}"]
        target = model.params[key]
        if value.shape != target.shape or value.dtype != target.dtype:
            raise ValueError(f"{path}: param/{key} has shape {value.shape} and dtype {value.dtype}, expected "
                             f"{target.shape} and {target.dtype}")
        target[...] = value
    return model


def _check_history(meta):
    """The epoch and history a checkpoint's ``meta`` holds, checked."""
    epoch, history = meta.get("epoch"), meta.get("history")
    if type(epoch) is not int or epoch < 0:
        raise _Refused(f"epoch {epoch!r} is not an int >= 0")
    metrics = history.get("metrics") if isinstance(history, dict) else None
    seconds = history.get("seconds") if isinstance(history, dict) else None

    def numbers(values):
        return isinstance(values, list) and all(type(x) in (int, float) for x in values)

    if not isinstance(metrics, dict) or not all(isinstance(k, str) and numbers(x) for k, x in metrics.items()) \
            or not numbers(seconds):
        raise _Refused("its history is not lists of numbers by metric, and of seconds")
    return epoch, metrics, seconds


def restore_checkpoint(model, optimizer, path, synthetic=None):
    """Load a :meth:`Model.fit` checkpoint into ``model``, ``optimizer`` and the synthetic-gradient
    module, if any; returns (epoch, history).

    All or nothing: the whole file is checked against the model, the optimizer and the module
    (architecture, every array's shape and dtype, the optimizer's kind, settings and state, the
    history) before anything is changed, so a refused file leaves all three as they were.
    """
    from .model import History  # noqa: PLC0415

    arrays, meta = _read(path)  # read once: the model and the training state come from the same file
    saved = _restore(arrays, meta, path, model.backend)
    if model_spec(saved) != model_spec(model):
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
        epoch, metrics, seconds = _check_history(meta)
    except _Refused as error:
        raise ValueError(f"checkpoint: {path}: {error}") from None

    def section(prefix):
        return {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}

    # Every part is checked on a scratch object first; only then is anything live changed.
    staged = type(optimizer)(**optimizer.config())
    staged.load_state_arrays(section("optimizer/"), model.params, source=f"checkpoint: {path}: optimizer state")
    if synthetic is not None:
        stored_sg = section("sg/")
        if set(stored_sg) != set(synthetic.params):
            raise ValueError(f"checkpoint: {path} holds synthetic-gradient arrays {sorted(stored_sg)}, expected "
                             f"{sorted(synthetic.params)}")
        for key, value in stored_sg.items():
            target = synthetic.params[key]
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"checkpoint: {path} holds sg/{key} of shape {value.shape} and dtype "
                                 f"{value.dtype.name}, expected {target.shape} and {target.dtype.name}")
        staged_sg = type(synthetic.optimizer)(**synthetic.optimizer.config())
        staged_sg.load_state_arrays(section("sg_optimizer/"), synthetic.params,
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
