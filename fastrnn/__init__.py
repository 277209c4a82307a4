"""fastrnn: Numba-compiled recurrent-network kernels with NumPy reference oracles.

Cells (time-major, ``x`` of shape (T, B, I)): :class:`RNN`, :class:`GRU`, :class:`LSTM`,
:class:`UGRNN` and :class:`IntersectionRNN`. Each has ``params``, ``forward(x, state=None)`` and
``backward(tape, dy, dstate=None, truncate=None)``.
"""

from .cells import GRU, LSTM, RNN, UGRNN, Cell, IntersectionRNN, Tape

__version__ = "0.1.0"

__all__ = ["RNN", "GRU", "LSTM", "UGRNN", "IntersectionRNN", "Cell", "Tape", "__version__"]
