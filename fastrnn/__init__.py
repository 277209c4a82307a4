"""fastrnn: Numba-compiled recurrent-network kernels with NumPy reference oracles.

Cells (time-major, ``x`` of shape (T, B, I)): :class:`RNN`, :class:`GRU`, :class:`LSTM`,
:class:`UGRNN` and :class:`IntersectionRNN`. Each has ``params``, ``forward(x, state=None)`` and
``backward(tape, dy, dstate=None, truncate=None)``. Layers combine into a :class:`DilatedRNN`
(any cells, any dilations; all ones is a plain deep stack) and :class:`Bidirectional` pairs.
:class:`Model` puts a linear head and a loss on any of them and trains it (:meth:`Model.fit`,
optimizers :class:`SGD`, :class:`Adam`, :class:`RMSProp`); :func:`load` reads a saved model.
"""

from ._version import __version__
from .cells import GRU, LSTM, RNN, UGRNN, Cell, IntersectionRNN, Tape
from .model import Model, load
from .optim import SGD, Adam, RMSProp
from .pytorch import from_torch, to_torch
from .stacks import Bidirectional, DilatedRNN
from .sweep import sweep
from .synthetic_gradients import SyntheticGradients
from .training import DivergenceError, History

__all__ = ["RNN", "GRU", "LSTM", "UGRNN", "IntersectionRNN", "DilatedRNN", "Bidirectional", "Cell", "Tape",
           "Model", "History", "DivergenceError", "SGD", "Adam", "RMSProp", "load",
           "SyntheticGradients", "sweep", "from_torch", "to_torch", "__version__"]
