"""Pointwise step math, one module per cell; the driver reaches them through :data:`FORWARD_STEPS`
and :data:`BACKWARD_STEPS` here (each cell's copy of the recurrences calls its own).

Each module defines its layout (``GATES``, ``STATES``, ``TAPE``, ``CACHE``, ``SEPARATE_HH``,
``DIRECT_INPUT``, ``DIRECT_HIDDEN``: the one place a cell's numbers live),
``forward(option, t, lo, hi, xp, b_ih, hp, b_hh, xt, hs, cs, ys, cache)`` and
``backward(option, t, lo, hi, xt, hs, cs, cache, dout, dh, dc, gi, gh, dh_direct, dc_prev, dxt)`` with
the contract written in :mod:`fastrnn.kernels._driver`.

The steps compute in the data's dtype: their constant ``one = hs.dtype.type(1.0)`` rather than the
literal ``1.0``, which Numba types as float64 and which made every float32 expression it entered
float64 (half the elements a vector, and conversions both ways). NumPy, and so the reference,
keeps such expressions in float32.
"""

from .._jit import unaliased_twin

# Cell ids, passed to the driver as compile-time literals (its layout flags: DIRECT_INPUT, ...).
RNN = 0
GRU = 1
LSTM = 2
UGRNN = 3
INTERSECTION = 4

from . import gru, intersection, lstm, rnn, ugrnn  # noqa: E402  (the modules read nothing from here)

_MODULES = {RNN: rnn, GRU: gru, LSTM: lstm, UGRNN: ugrnn, INTERSECTION: intersection}

#: Cells whose backward step adds a direct gradient into dx (the +RNN's y reads x̃ itself); for the
#: others dx is the input GEMM alone, written straight into the caller's array.
DIRECT_INPUT = tuple(cell for cell, module in _MODULES.items() if module.DIRECT_INPUT)
#: Cells with a gradient at h_{t-1} besides the one through W_hh (GRU's z * dh), which their backward
#: step writes into ``dh_direct``; for the others the W_hh product is the whole of it.
DIRECT_HIDDEN = tuple(cell for cell, module in _MODULES.items() if module.DIRECT_HIDDEN)
#: The number of state parts of each cell, by its id.
STATE_COUNTS = tuple(len(_MODULES[cell].STATES) for cell in range(len(_MODULES)))


def tape_shapes(module, T, B, H):
    """The shapes of the tape arrays a cell's forward fills, in its kernels' argument order, from its
    step module's ``TAPE`` and ``CACHE``: ``xt (T, B, H)`` (a projected input), ``hs``/``cs``
    ``(T+1, B, H)`` (the states, the initial one first), ``cache (T, B, CACHE*H)``."""
    shapes = {"xt": (T, B, H), "hs": (T + 1, B, H), "cs": (T + 1, B, H), "cache": (T, B, module.CACHE * H)}
    return [shapes[name] for name in module.TAPE]


#: Each cell's forward step, by its id: inlined into the time loop (a call passing a dozen arrays
#: costs reference-count traffic on each of them, every step).
FORWARD_STEPS = {cell: module.forward for cell, module in _MODULES.items()}

#: The gated cells' backward steps as kernels of their own, called once a step, whose arrays LLVM
#: knows not to overlap (:func:`fastrnn.kernels._jit.unaliased_twin`). Inlined, their loops over
#: a dozen arrays each ran behind a per-row overlap check that cost more than the arithmetic; as
#: functions of their own (one step, ns an element, inlined -> called, float64 / float32):
#: LSTM at B = 16, H = 16 3.1 -> 1.5 / 3.4 -> 1.0, at B = 128, H = 20 3.1 -> 1.8 / 3.1 -> 1.0;
#: GRU 2.7 -> 1.7 / 4.3 -> 1.4 and 2.4 -> 1.7 / 3.7 -> 1.1. A call costs ~50 ns (at B = 1 a
#: step takes 25-40 ns longer). The RNN's step, four arrays, vectorises inlined, and a call
#: would cost more than the whole step: it stays inlined, as do the forward steps, which their
#: activations bound (no gain measured).
BACKWARD_STEPS = {cell: unaliased_twin(module.backward) if cell != RNN else module.backward
                  for cell, module in _MODULES.items()}

