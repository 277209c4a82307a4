"""fastrnn: Numba-compiled recurrent-network kernels with NumPy reference oracles.

Cells (time-major, ``x`` of shape (T, B, I)): :class:`RNN`. Each has ``params``,
``forward(x, state=None)`` and ``backward(tape, dy, dstate=None, truncate=None)``.
"""

from .cells import RNN, Cell, Tape

__version__ = "0.1.0"

__all__ = ["RNN", "Cell", "Tape", "__version__"]
