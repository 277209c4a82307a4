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
import os
import tempfile
import zipfile

import numpy as np

from . import __version__
from .cells import GRU, LSTM, RNN, UGRNN, IntersectionRNN
from .stacks import Bidirectional, DilatedRNN

FORMAT = "fastrnn.model/1"
CELLS = {cls.__name__: cls for cls in (RNN, GRU, LSTM, UGRNN, IntersectionRNN)}


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
            "loss": model.loss.name, "readout": model.readout}


def build_model(spec, backend, seed=0):
    """Inverse of :func:`model_spec`, with fresh parameters."""
    from .model import Model  # noqa: PLC0415  (model imports this module lazily too)

    core = build_core(spec["core"], spec["dtype"], backend)
    return Model(core, spec["output_size"], loss=spec["loss"], readout=spec["readout"], seed=seed)


def _atomic_savez(path, arrays):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastrnn-", suffix=".npz.tmp", dir=directory)
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


def _read(path):
    """The arrays and the parsed ``meta`` of a fastrnn file, or a ValueError saying why not."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a fastrnn model file (cannot be read as .npz: {error})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a fastrnn model file (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError as error:
        raise ValueError(f"{path}: not a fastrnn model file (unreadable 'meta': {error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: expected a {FORMAT} file, got format {got!r}")
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


def restore_checkpoint(model, optimizer, path, synthetic=None):
    """Load a :meth:`Model.fit` checkpoint into ``model``, ``optimizer`` and the synthetic-gradient
    module, if any; returns (epoch, history)."""
    from .model import History  # noqa: PLC0415

    arrays, meta = _read(path)  # read once: the model and the training state come from the same file
    saved = _restore(arrays, meta, path, model.backend)
    if model_spec(saved) != model_spec(model):
        raise ValueError(f"checkpoint: {path} holds a different model ({saved!r}); cannot resume {model!r} from it")
    if "epoch" not in meta or "optimizer" not in meta:
        raise ValueError(f"checkpoint: {path} is a saved model, not a fit checkpoint (no epoch or optimizer)")
    if meta["optimizer"]["kind"] != type(optimizer).__name__ or meta["optimizer"]["config"] != optimizer.config():
        raise ValueError(f"checkpoint: {path} was written with {meta['optimizer']['kind']}"
                         f"({meta['optimizer']['config']}), not {optimizer!r}")
    saved_sg = meta.get("synthetic")
    ours = None if synthetic is None else {"scale": synthetic.scale, "lr": synthetic.lr}
    if saved_sg != ours:
        raise ValueError(f"checkpoint: {path} was written with synthetic gradients {saved_sg}, this fit uses {ours}")
    if synthetic is not None:
        for key in ("A", "c"):
            stored = arrays[f"sg/{key}"]
            if stored.shape != synthetic.params[key].shape:
                raise ValueError(f"checkpoint: {path} holds sg/{key} of shape {stored.shape}, expected "
                                 f"{synthetic.params[key].shape}")
            synthetic.params[key][...] = stored
        synthetic.optimizer.load_state_arrays({key.removeprefix("sg_optimizer/"): value for key, value in
                                               arrays.items() if key.startswith("sg_optimizer/")})
    for key, value in saved.params.items():
        model.params[key][...] = value
    model.seed = saved.seed
    optimizer.load_state_arrays({key.removeprefix("optimizer/"): value for key, value in arrays.items()
                                 if key.startswith("optimizer/")})
    history = History(meta["history"]["metrics"])
    history.seconds = list(meta["history"]["seconds"])
    return meta["epoch"], history

