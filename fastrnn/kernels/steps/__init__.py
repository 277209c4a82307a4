"""Pointwise step math, one module per cell; the only part of a kernel a new cell has to write.

Each module defines ``forward(option, t, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache)`` and
``backward(option, t, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt)`` with the
contract written in :mod:`fastrnn.kernels._driver`, which selects them by the cell ids below.
"""

# Cell ids, passed to the driver as compile-time literals so that it specialises per cell.
RNN = 0
GRU = 1
LSTM = 2
UGRNN = 3
INTERSECTION = 4

#: Cells whose backward step adds a direct gradient into dx (the +RNN's y reads x̃ itself); for the
#: others dx is the input GEMM alone, written straight into the caller's array.
DIRECT_INPUT = (INTERSECTION,)
