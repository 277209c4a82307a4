"""Model files and fit checkpoints: what a saved model holds, and the checks made before one is built.

A file is an archive of :mod:`fastrnn.io`. It holds every parameter under ``param/<key>``, for a
checkpoint the optimizer's state under ``optimizer/<slot>/<key>`` and any synthetic-gradient
module under ``sg/`` (its optimizer under ``sg_optimizer/``), and in ``meta`` the model's
description (:meth:`fastrnn.Model.describe`), its seed and, for a checkpoint, the epoch, the
history and the optimizer's class and settings.

The description is checked against the stored arrays, array for array, before anything it
describes is built, so a file's claimed sizes cost no memory.
"""

from . import io
from ._version import __version__
from .layer import DescriptionError, described_shapes, is_size

FORMAT = "fastrnn.model/1"


def save(model, path, *, optimizer=None, epoch=None, history=None, synthetic=None):
    """Write ``model`` (and, for a checkpoint, the optimizer state, epoch, history and any
    synthetic-gradient module) to ``path``, atomically."""
    meta = {"format": FORMAT, "fastrnn": __version__, **model.describe(), "seed": model.seed}
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
    io.write(path, arrays, meta)


def read(path):
    """The arrays and the checked ``meta`` of a fastrnn model file, or a ValueError saying why not."""
    arrays, meta = io.read(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: expected a {FORMAT} file, got format {got!r}")
    _check_description(meta, arrays, path)
    return arrays, meta


def _check_description(meta, arrays, path):
    """The architecture a file describes must fit the parameters it stores, array for array."""
    try:
        shapes, H = described_shapes(meta.get("core"), "core", "core.")
        O = meta.get("output_size")
        if not is_size(O):
            raise DescriptionError(f"output_size {O!r} is not a positive size")
        if meta.get("dtype") not in ("float32", "float64"):
            raise DescriptionError(f"dtype {meta.get('dtype')!r} is not 'float32' or 'float64'")
        if not all(isinstance(meta.get(key), str) for key in ("loss", "readout")):
            raise DescriptionError("loss and readout must be names")
        if type(meta.get("seed")) is not int or meta["seed"] < 0:
            raise DescriptionError(f"seed {meta.get('seed')!r} is not an int >= 0")
    except DescriptionError as error:
        raise ValueError(f"{path}: the model described in this file is not valid: {error}") from None
    shapes.update({"head.weight": (O, H), "head.bias": (O,)})
    stored = set(io.section(arrays, "param/"))
    if stored != set(shapes):
        raise ValueError(f"{path}: parameters {sorted(stored ^ set(shapes))} do not match the architecture")
    for key, shape in shapes.items():
        value = arrays[f"param/{key}"]
        if value.shape != shape or value.dtype != meta["dtype"]:
            raise ValueError(f"{path}: param/{key} has shape {value.shape} and dtype {value.dtype}, expected "
                             f"{shape} and {meta['dtype']}")


def build(model_class, arrays, meta, path, backend):
    """The model a file read by :func:`read` describes, with its stored parameters copied in."""
    try:
        model = model_class.from_description(meta, backend, seed=meta["seed"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: the architecture in this file cannot be built ({error!r})") from None
    expected = set(model.params)
    stored = set(io.section(arrays, "param/"))
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


def checked_history(meta):
    """The epoch, metrics and seconds a checkpoint's ``meta`` holds; DescriptionError if they are
    not an int >= 0 and lists of numbers."""
    epoch, history = meta.get("epoch"), meta.get("history")
    if type(epoch) is not int or epoch < 0:
        raise DescriptionError(f"epoch {epoch!r} is not an int >= 0")
    metrics = history.get("metrics") if isinstance(history, dict) else None
    seconds = history.get("seconds") if isinstance(history, dict) else None

    def numbers(values):
        return isinstance(values, list) and all(type(x) in (int, float) for x in values)

    if not isinstance(metrics, dict) or not all(isinstance(k, str) and numbers(x) for k, x in metrics.items()) \
            or not numbers(seconds):
        raise DescriptionError("its history is not lists of numbers by metric, and of seconds")
    return epoch, metrics, seconds
