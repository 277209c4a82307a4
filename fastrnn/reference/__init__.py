"""Pure-NumPy reference implementations: the oracles the kernels are tested against.

One module per cell, with the same function names and signatures as :mod:`fastrnn.kernels`,
written from the equations, step by step, and sharing no code with the kernels.
"""

from . import dilated, gru, intersection, lstm, rnn, ugrnn  # noqa: F401  (dilated: the stacks' oracle)

#: The cell oracles, paired by name with :mod:`fastrnn.kernels`; :mod:`.dilated` is the stacks' oracle.
__all__ = ["rnn", "gru", "lstm", "ugrnn", "intersection"]
