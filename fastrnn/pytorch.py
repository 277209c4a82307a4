"""Layers to and from PyTorch: :func:`from_torch` and :func:`to_torch`.

fastrnn's RNN, GRU and LSTM have PyTorch's equations and parameter layouts, so a module's weights
move across by renaming (``weight_hh_l1_reverse`` is layer 1's backward cell's ``weight_hh``).
A module of several layers becomes a :class:`~fastrnn.DilatedRNN` with dilations 1, a
bidirectional one :class:`~fastrnn.Bidirectional` layers (forward features first, as PyTorch
concatenates them). torch is imported when these functions are called, never by ``import
fastrnn``.
"""

import numpy as np

from .cells import GRU, LSTM, RNN
from .stacks import Bidirectional, DilatedRNN

_DTYPES = ("float32", "float64")


def _torch():
    try:
        import torch  # noqa: PLC0415  (optional: only these functions need it)
    except ImportError:
        raise ImportError("fastrnn.from_torch/to_torch need PyTorch (pip install torch==2.13.0, the CPU build)") \
            from None
    return torch


def _kind(module, torch):
    """(fastrnn class, options) for a torch module, or a clear error."""
    if isinstance(module, torch.nn.LSTM):
        if getattr(module, "proj_size", 0):
            raise ValueError(f"module: LSTM with proj_size={module.proj_size} has no fastrnn equivalent")
        return LSTM, {}
    if isinstance(module, torch.nn.GRU):
        return GRU, {}
    if isinstance(module, torch.nn.RNN):
        return RNN, {"nonlinearity": module.nonlinearity}
    raise TypeError(f"module: expected a torch.nn.RNN, GRU or LSTM, got {type(module).__name__}")


def from_torch(module, *, backend="numba"):
    """The fastrnn layer that computes what a PyTorch ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM`` computes.

    Parameters
    ----------
    module : torch.nn.RNN, torch.nn.GRU or torch.nn.LSTM
        Any ``num_layers``, ``bidirectional``, ``batch_first``; float32 or float64 parameters
        (the layer's dtype). The weights are copied.
    backend : {"numba", "numpy"}

    Returns
    -------
    Cell, Bidirectional or DilatedRNN
        One cell for a one-layer module; a :class:`Bidirectional` pair for a bidirectional one;
        a :class:`DilatedRNN` with dilations 1 over such layers for ``num_layers > 1``. Like every
        fastrnn layer it is time-major, ``x`` of shape (T, B, I), whatever the module's
        ``batch_first``; its state follows fastrnn's layout (per layer, per direction), not
        PyTorch's stacked ``(num_layers * directions, B, H)``.

    Raises
    ------
    TypeError
        For another kind of module.
    ValueError
        For what fastrnn does not compute: ``dropout`` between layers, ``proj_size``,
        ``bias=False``, parameters of another dtype.

    Examples
    --------
    >>> import torch, numpy as np, fastrnn
    >>> lstm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    >>> layer = fastrnn.from_torch(lstm)
    >>> x = np.random.default_rng(0).standard_normal((5, 2, 3))
    >>> y, state, tape = layer.forward(x)
    >>> bool(np.allclose(y, lstm(torch.from_numpy(x))[0].detach().numpy()))
    True
    """
    torch = _torch()
    cls, options = _kind(module, torch)
    if module.dropout:
        raise ValueError(f"module: dropout={module.dropout} between layers has no fastrnn equivalent")
    if not module.bias:
        raise ValueError("module: bias=False has no fastrnn equivalent (fastrnn cells always have biases)")
    weights = {name: value.detach().cpu().numpy() for name, value in module.state_dict().items()}
    dtype = weights["weight_ih_l0"].dtype.name
    if dtype not in _DTYPES:
        raise ValueError(f"module: expected float32 or float64 parameters, got {dtype}")
    directions = ("", "_reverse") if module.bidirectional else ("",)
    layers = []
    for layer in range(module.num_layers):
        cells = []
        for suffix in directions:
            input_size = module.input_size if layer == 0 else module.hidden_size * len(directions)
            cell = cls(input_size, module.hidden_size, dtype=dtype, backend=backend, **options)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                cell.params[name][...] = weights[f"{name}_l{layer}{suffix}"]
            cells.append(cell)
        layers.append(Bidirectional(*cells) if module.bidirectional else cells[0])
    if len(layers) == 1:
        return layers[0]
    return DilatedRNN(layers, [1] * len(layers))


def _torch_class(cell, torch):
    if isinstance(cell, LSTM):
        return torch.nn.LSTM, {}
    if isinstance(cell, GRU):
        return torch.nn.GRU, {}
    if isinstance(cell, RNN) and cell.nonlinearity in ("tanh", "relu"):
        return torch.nn.RNN, {"nonlinearity": cell.nonlinearity}
    what = f"RNN(nonlinearity={cell.nonlinearity!r})" if isinstance(cell, RNN) else type(cell).__name__
    raise ValueError(f"layer: {what} has no PyTorch module (PyTorch has RNN with tanh or relu, GRU and LSTM)")


def to_torch(layer):
    """The PyTorch module that computes what a fastrnn layer computes (the inverse of :func:`from_torch`).

    Parameters
    ----------
    layer : Cell, Bidirectional or DilatedRNN
        An RNN (tanh or relu), GRU or LSTM; a :class:`Bidirectional` pair of two such cells of one
        kind and size; or a :class:`DilatedRNN` with dilations 1 whose layers are all cells, or
        all such pairs, of one kind and hidden size.

    Returns
    -------
    torch.nn.RNN, torch.nn.GRU or torch.nn.LSTM
        With ``batch_first=False`` (time-major, as fastrnn), the layer's dtype, and a copy of its
        weights.
    """
    torch = _torch()
    if isinstance(layer, DilatedRNN):
        if any(d != 1 for d in layer.dilations):
            raise ValueError(f"layer: a DilatedRNN with dilations {list(layer.dilations)} has no PyTorch module "
                             f"(PyTorch's stacks are dilations 1)")
        layers = list(layer.cells)
    else:
        layers = [layer]
    bidirectional = isinstance(layers[0], Bidirectional)
    rows = []
    for i, each in enumerate(layers):
        if isinstance(each, Bidirectional) != bidirectional:
            raise ValueError(f"layer: layer {i} is {'not ' if bidirectional else ''}bidirectional, unlike layer 0")
        rows.append((each.forward_cell, each.backward_cell) if bidirectional else (each,))
    first = rows[0][0]
    cls, options = _torch_class(first, torch)
    for i, cells in enumerate(rows):
        for cell in cells:
            if _torch_class(cell, torch) != (cls, options) or cell.hidden_size != first.hidden_size:
                raise ValueError(f"layer: layer {i} is {cell!r}; a PyTorch module needs every layer and direction "
                                 f"of one kind and hidden size, like {first!r}")
    module = cls(first.input_size, first.hidden_size, num_layers=len(rows), bidirectional=bidirectional,
                 dtype=getattr(torch, first.dtype.name), **options)
    state = {}
    for i, cells in enumerate(rows):
        for cell, suffix in zip(cells, ("", "_reverse")):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                state[f"{name}_l{i}{suffix}"] = torch.from_numpy(np.array(cell.params[name]))
    module.load_state_dict(state)
    return module
