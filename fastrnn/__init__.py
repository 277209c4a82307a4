"""fastrnn: Numba-compiled recurrent-network kernels with NumPy reference oracles.

Cells (time-major, ``x`` of shape (T, B, I)): :class:`RNN`, :class:`GRU`, :class:`LSTM`,
:class:`UGRNN` and :class:`IntersectionRNN`. Each has ``params``, ``forward(x, state=None)`` and
``backward(tape, dy, dstate=None, truncate=None)``. Layers combine into a :class:`DilatedRNN`
(any cells, any dilations; all ones is a plain deep stack) and :class:`Bidirectional` pairs.
"""

from .cells import GRU, LSTM, RNN, UGRNN, Cell, IntersectionRNN, Tape
from .stacks import Bidirectional, DilatedRNN

__version__ = "0.1.0"

__all__ = ["RNN", "GRU", "LSTM", "UGRNN", "IntersectionRNN", "DilatedRNN", "Bidirectional", "Cell", "Tape", "__version__"]
