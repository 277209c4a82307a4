"""Pointwise step math, one module per cell; the only part of a kernel a new cell has to write.

Each module defines ``forward(option, xp, b_ih, hp, b_hh, h_prev, c_prev, x, h_new, c_new, y, cache)``
and ``backward(option, x, h_prev, c_prev, h_new, c_new, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dx)``
with the contract written in :mod:`fastrnn.kernels._driver`, which selects them by the cell ids below.
"""

# Cell ids, passed to the driver as compile-time literals so that it specialises per cell.
RNN = 0
