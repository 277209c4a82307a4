"""A whole training loop over batches as one compiled call: what :meth:`fastrnn.Model.fit` does
per batch, for a model whose core is one cell.

Called from Python once per block of batches, the loop gathers each batch, runs every TBPTT
chunk (the cell's forward, the linear head, the loss and its gradient, the cell's backward,
clipping) and applies the optimizer (and, with synthetic gradients, injects the module's
prediction and trains the module), on flat buffers that the model's and the optimizer's arrays
are views of. Through the Python layers the same update cost ~100 µs of interpreter time at the
binary-addition size, against ~12 µs of kernel time.

The numbers are those of the Python path (``fastrnn.training.PythonLoop.batch``), operation for operation: the
same chunks, the same checks in the same order, the optimizers' formulas of
:mod:`fastrnn.kernels.optim`. Only summation orders differ (loops here, BLAS there).

Buffers (one dtype throughout, C-contiguous):

- ``params``, ``grads`` (n,): every parameter, then every gradient, in the model's order: the
  cell's parameters (its kernels' argument order), then the head's weight (O, H) and bias (O,).
  ``layout`` (p, 3) holds each array's (offset, rows, columns); columns 0 marks a vector.
- ``slots`` (s, n): the optimizer's state, one row per slot (SGD: velocity; Adam: m, v;
  RMSProp: square).
- ``X`` (N, T, I); ``labels`` (N, L) integer classes or ``values`` (N, L, O) float targets, the
  other one empty; L = T for ``readout="all"``, 1 for ``"last"``.
- ``order`` (N,): the epoch's permutation with each batch's indices sorted
  (:func:`fastrnn.flat.batch_order`); batch ``b`` is ``order[b*B:(b+1)*B]``.
- ``segments`` (c, 3): (window, start, end) of each chunk, as ``fastrnn.training.segments``.
- ``config`` (11,) float64: see the ``C_*`` indices below; ``hyper``: the optimizer's settings.
- ``module``, ``module_grads`` (F*F + F,), ``module_slots`` (2, F*F + F), ``module_hyper``: the
  synthetic-gradient module and its Adam (empty without synthetic gradients).
- ``out`` (:data:`OUT_SIZE`,) float64: the running sums of the loss, positions, correct, judged
  and updates applied, and of the module's loss and updates, added to (an epoch's calls share
  one); on a stop, the batch and chunk where it happened and the mean loss there (see ``O_*``).

Returns a status: :data:`OK`, or why the loop stopped (the update that found it is not applied,
as :meth:`fastrnn.Model.fit` requires).
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from . import gru, intersection, lstm, optim, rnn, steps, ugrnn
from ._driver import abt_loops, mm_ab, mm_abt, mm_atb, prepare
from ._gemm import OVERWRITE, packed_shape, threads
from ._jit import inlined, kernel, reassociating
from ._math import sigmoid
from .checks import all_finite
from .steps import GRU, INTERSECTION, LSTM, RNN, UGRNN

# Statuses.
OK = 0
LOSS_NOT_FINITE = 1
OUTPUT_GRADIENT_NOT_FINITE = 2
UPDATE_NOT_FINITE = 3

# Losses and optimizers, as codes.
SOFTMAX_CROSS_ENTROPY = 0
SIGMOID_CROSS_ENTROPY = 1
MSE = 2
SGD = 0
ADAM = 1
RMSPROP = 2

# ADAM as a value rather than a literal (a constant argument would compile a copy of update).
_ADAM = np.int64(ADAM)

# config: the loss, the optimizer and their settings.
C_LOSS, C_READOUT_LAST, C_SUM, C_TRUNCATE, C_CLIP, C_OPTIMIZER, C_STEPS, C_OPTION = range(8)
# ...and synthetic gradients: whether they are on, λ, and the steps of the module's Adam so far.
C_SG, C_SG_SCALE, C_SG_STEPS = range(8, 11)
# The optimizer's hyper-parameters, in its constructor's order (lr first), are the array ``hyper``.
# out:
O_LOSS, O_POSITIONS, O_CORRECT, O_JUDGED, O_UPDATES, O_BATCH, O_CHUNK, O_VALUE = range(8)
# ...and the synthetic-gradient module's summed loss and its number of updates.
O_SG_LOSS, O_SG_UPDATES = 8, 9
OUT_SIZE = 10


@inlined
def _matrix(params, layout, k):
    return params[layout[k, 0]:layout[k, 0] + layout[k, 1] * layout[k, 2]].reshape((layout[k, 1], layout[k, 2]))


@inlined
def _vector(params, layout, k):
    return params[layout[k, 0]:layout[k, 0] + layout[k, 1]]


# -- each cell's kernels behind one signature ---------------------------------------
#
# core_forward(cell, option, x, state (S, B, H), params, layout, y, final (S, B, H)) -> tape (a tuple)
# core_backward(cell, option, x, params, layout, tape, dy, dfinal (S, B, H), truncate, grads, dstart (S, B, H))
# state_at(cell, tape, j, out (S, B, H)): the state after j steps of the window
#
# The cell is a compile-time literal, resolved by overloads as in :mod:`fastrnn.kernels.steps`.

def _rnn_forward(cell, option, x, state, params, layout, y, final):
    T, B, _ = x.shape
    hs = np.empty((T + 1, B, y.shape[2]), x.dtype)
    rnn.forward_into(x, state[0], _matrix(params, layout, 0), _matrix(params, layout, 1), _vector(params, layout, 2),
                     _vector(params, layout, 3), option, y, final[0], hs)
    return (hs,)


def _rnn_backward(cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart):
    rnn.backward_into(x, _matrix(params, layout, 0), _matrix(params, layout, 1), _vector(params, layout, 2),
                      _vector(params, layout, 3), option, tape[0], dy, dfinal[0], truncate,
                      _matrix(grads, layout, 0), _matrix(grads, layout, 1), _vector(grads, layout, 2),
                      _vector(grads, layout, 3), np.empty_like(x), dstart[0])


def _gated_forward(module, width):
    """GRU and UGRNN: the tape is hs and a cache of ``width`` H columns (the step module's CACHE)."""
    def forward(cell, option, x, state, params, layout, y, final):
        T, B, _ = x.shape
        H = y.shape[2]
        hs = np.empty((T + 1, B, H), x.dtype)
        cache = np.empty((T, B, width * H), x.dtype)
        module.forward_into(x, state[0], _matrix(params, layout, 0), _matrix(params, layout, 1),
                            _vector(params, layout, 2), _vector(params, layout, 3), y, final[0], hs, cache)
        return hs, cache
    return forward


def _gated_backward(module):
    def backward(cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart):
        module.backward_into(x, _matrix(params, layout, 0), _matrix(params, layout, 1), _vector(params, layout, 2),
                             _vector(params, layout, 3), tape[0], tape[1], dy, dfinal[0], truncate,
                             _matrix(grads, layout, 0), _matrix(grads, layout, 1), _vector(grads, layout, 2),
                             _vector(grads, layout, 3), np.empty_like(x), dstart[0])
    return backward


def _lstm_forward(cell, option, x, state, params, layout, y, final):
    T, B, _ = x.shape
    H = y.shape[2]
    hs = np.empty((T + 1, B, H), x.dtype)
    cs = np.empty((T + 1, B, H), x.dtype)
    cache = np.empty((T, B, steps.lstm.CACHE * H), x.dtype)
    lstm.forward_into(x, state[0], state[1], _matrix(params, layout, 0), _matrix(params, layout, 1),
                      _vector(params, layout, 2), _vector(params, layout, 3), y, final[0], final[1], hs, cs, cache)
    return hs, cs, cache


def _lstm_backward(cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart):
    lstm.backward_into(x, _matrix(params, layout, 0), _matrix(params, layout, 1), _vector(params, layout, 2),
                       _vector(params, layout, 3), tape[0], tape[1], tape[2], dy, dfinal[0], dfinal[1], truncate,
                       _matrix(grads, layout, 0), _matrix(grads, layout, 1), _vector(grads, layout, 2),
                       _vector(grads, layout, 3), np.empty_like(x), dstart[0], dstart[1])


def _intersection_forward(cell, option, x, state, params, layout, y, final):
    T, B, _ = x.shape
    H = y.shape[2]
    xt = np.empty((T, B, H), x.dtype)
    hs = np.empty((T + 1, B, H), x.dtype)
    cache = np.empty((T, B, steps.intersection.CACHE * H), x.dtype)
    intersection.forward_into(x, state[0], _matrix(params, layout, 0), _matrix(params, layout, 1),
                              _vector(params, layout, 2), _vector(params, layout, 3), _matrix(params, layout, 4),
                              _vector(params, layout, 5), y, final[0], xt, hs, cache)
    return xt, hs, cache


def _intersection_backward(cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart):
    intersection.backward_into(x, _matrix(params, layout, 0), _matrix(params, layout, 1), _vector(params, layout, 2),
                               _vector(params, layout, 3), _matrix(params, layout, 4), _vector(params, layout, 5),
                               tape[0], tape[1], tape[2], dy, dfinal[0], truncate, _matrix(grads, layout, 0),
                               _matrix(grads, layout, 1), _vector(grads, layout, 2), _vector(grads, layout, 3),
                               _matrix(grads, layout, 4), _vector(grads, layout, 5), np.empty_like(x),
                               dstart[0])


def _hidden_at(index):
    """A one-state cell's tape keeps its hidden states at ``index`` (the place of "hs" in its TAPE)."""
    def state_at(cell, tape, j, out):
        hs = tape[index]
        for b in range(out.shape[1]):
            for i in range(out.shape[2]):
                out[0, b, i] = hs[j, b, i]
    return state_at


def _lstm_state_at(cell, tape, j, out):
    """LSTM's state (h, c): its tape's first two arrays, hs and cs (its TAPE)."""
    for s in range(2):
        for b in range(out.shape[1]):
            for i in range(out.shape[2]):
                out[s, b, i] = tape[s][j, b, i]


_FORWARD = {steps.RNN: _rnn_forward, steps.GRU: _gated_forward(gru, steps.gru.CACHE), steps.LSTM: _lstm_forward,
            steps.UGRNN: _gated_forward(ugrnn, steps.ugrnn.CACHE), steps.INTERSECTION: _intersection_forward}
_BACKWARD = {steps.RNN: _rnn_backward, steps.GRU: _gated_backward(gru), steps.LSTM: _lstm_backward,
             steps.UGRNN: _gated_backward(ugrnn), steps.INTERSECTION: _intersection_backward}
_STATE_AT = {steps.RNN: _hidden_at(steps.rnn.TAPE.index("hs")), steps.GRU: _hidden_at(steps.gru.TAPE.index("hs")),
             steps.LSTM: _lstm_state_at, steps.UGRNN: _hidden_at(steps.ugrnn.TAPE.index("hs")),
             steps.INTERSECTION: _hidden_at(steps.intersection.TAPE.index("hs"))}


def core_forward(cell, option, x, state, params, layout, y, final):
    return _FORWARD[cell](cell, option, x, state, params, layout, y, final)


def core_backward(cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart):
    _BACKWARD[cell](cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart)


def state_at(cell, tape, j, out):
    _STATE_AT[cell](cell, tape, j, out)


# In compiled code the cell is a literal, and typing takes that cell's function as the
# implementation. Called, not inlined: an inlined overload is compiled once for its type and then
# lowered again inside the loop (binary addition's cold training loop: 20.2 s inlined, 19.1 s
# called, the same speed).

@overload(core_forward)
def _core_forward(cell, option, x, state, params, layout, y, final):
    return _FORWARD[cell.literal_value] if isinstance(cell, types.IntegerLiteral) else None


@overload(core_backward)
def _core_backward(cell, option, x, params, layout, tape, dy, dfinal, truncate, grads, dstart):
    return _BACKWARD[cell.literal_value] if isinstance(cell, types.IntegerLiteral) else None


@overload(state_at)
def _state_at(cell, tape, j, out):
    return _STATE_AT[cell.literal_value] if isinstance(cell, types.IntegerLiteral) else None


# -- the head and the loss --------------------------------------------------------

@kernel
def head_loss(y, labels, values, t_lo, weight, bias, loss, norm, z, dz, counts):
    """The head's logits ``z = y W^T + b`` for the rows of ``y (n, H)``, the loss summed over them,
    and its gradient divided by ``norm`` into ``dz (n, O)``.

    Row r of y is position r: its target is ``labels[t_lo + r // B, r % B]`` or
    ``values[t_lo + r // B, r % B]`` (time-major, B the batch). Adds correct and judged
    predictions into ``counts``. Returns the loss sum.
    """
    n, O = z.shape
    B = labels.shape[1] if loss == SOFTMAX_CROSS_ENTROPY else values.shape[1]
    if O < NARROW:
        _narrow_logits(y, weight, z)
    else:
        mm_abt(y, weight, prepare(n, weight.T), z, threads())
    for r in range(n):
        for o in range(O):
            z[r, o] += bias[o]
    if loss == SIGMOID_CROSS_ENTROPY:
        # values (L, B, O) is C-contiguous, so row r's targets (t_lo + r // B, r % B, :) are
        # element r * O + o of its rows from t_lo on: the two loops run over flat arrays.
        targets = values.reshape(values.size)[t_lo * B * O:(t_lo * B + n) * O]
        return _sigmoid_cross_entropy(z.reshape(n * O), targets, norm, dz.reshape(n * O), counts)
    total = 0.0
    for r in range(n):
        t, b = t_lo + r // B, r % B
        if loss == SOFTMAX_CROSS_ENTROPY:
            target = labels[t, b]
            top = z[r, 0]
            best = 0
            for o in range(1, O):
                if z[r, o] > top:
                    top, best = z[r, o], o
            s = 0.0
            for o in range(O):
                s += math.exp(z[r, o] - top)
            log_s = math.log(s)
            total -= (z[r, target] - top) - log_s
            for o in range(O):
                dz[r, o] = math.exp((z[r, o] - top) - log_s)
            dz[r, target] -= 1.0
            if best == target:
                counts[0] += 1
            counts[1] += 1
        elif loss == MSE:
            for o in range(O):
                diff = z[r, o] - values[t, b, o]
                total += 0.5 * diff * diff
                dz[r, o] = diff
    for r in range(n):
        for o in range(O):
            dz[r, o] /= norm
    return total


# Terms per factor of the product in _sigmoid_cross_entropy: 1 + e^{-|z|} <= 2, so the product of
# this many stays below 2^512, far from overflow.
PRODUCT_TERMS = 512


@inlined
def _sigmoid_cross_entropy(z, y, norm, dz, counts):
    """The sigmoid cross-entropy of logits ``z`` against targets ``y`` (flat arrays of one size),
    summed: each term ``y max(0, -z) + (1 - y) max(0, z) + log(1 + e^{-|z|})``. Writes the gradient
    ``(σ(z) - y) / norm`` into ``dz``, adds the correct and judged predictions into ``counts``.

    One sigmoid per element gives both the gradient and e^{-|z|}: m = σ(-|z|), then σ(z) is
    1 - m or m, and e^{-|z|} = m / (1 - m). That loop vectorises (libm's exp and log1p, called per
    element, were most of a binary-addition head's time). The logarithms are summed as the
    logarithm of a product, one log1p per PRODUCT_TERMS elements: with 1 + q = Π (1 + e_k) carried
    as q (q' = q + e + q e), nothing cancels, and the sum keeps a relative accuracy of a few ulp
    per term, as a sum of log1p does.
    """
    size = z.size
    e = np.empty(size, np.float64)
    for k in range(size):
        zk = z[k]
        m = sigmoid(-abs(zk))
        dz[k] = ((1.0 - m if zk >= 0 else m) - y[k]) / norm
        e[k] = m / (1.0 - m)
    total = 0.0
    q = 0.0
    for k in range(size):
        zk, yk = z[k], y[k]
        total += yk * max(0.0, -zk) + (1.0 - yk) * max(0.0, zk)
        q += e[k] + q * e[k]
        if (k + 1) % PRODUCT_TERMS == 0:
            total += math.log1p(q)
            q = 0.0
        if (zk > 0) == (yk > 0.5):
            counts[0] += 1
    counts[1] += size
    return total + math.log1p(q)


# A head with fewer outputs than this (binary addition's 1, a few classes) multiplies by loops:
# the tiled product, built for wide matrices, spent most of its time on packing and edge tiles
# for O = 1 (a third of a training step at the binary-addition size).
NARROW = 8


@reassociating
def _narrow_logits(y, weight, z):
    """z = y @ weight.T as the driver's loops, with the reassociation that vectorises them."""
    abt_loops(y, weight, z)


@kernel
def head_backward(dz, y, weight, dweight, dbias, dy):
    """The head's gradients from ``dz (n, O)`` at outputs ``y (n, H)``: ``dweight = dz^T y``,
    ``dbias`` the column sums of dz, and the gradient at the outputs ``dy (n, H) = dz W``."""
    n, O = dz.shape
    H = y.shape[1]
    for o in range(O):
        dbias[o] = 0.0
    if O >= NARROW:
        for r in range(n):
            for o in range(O):
                dbias[o] += dz[r, o]
        panels, rows, width = packed_shape(n, H, y)
        mm_atb(dz, y, np.empty(panels * rows * width, y.dtype), dweight, OVERWRITE)
        mm_ab(dz, weight, prepare(n, weight), dy, OVERWRITE, threads())
        return
    # A narrow head (see NARROW): all three in one pass over the rows, each sum in the order of
    # the products' loops. As three passes (a bias loop, then the driver's atb and ab loops) it
    # took 1.9 µs at binary addition's n = 128, O = 1, H = 16, float64; now 0.9.
    for o in range(O):
        for j in range(H):
            dweight[o, j] = 0.0
    for r in range(n):
        d = dz[r, 0]
        for j in range(H):
            dy[r, j] = d * weight[0, j]
        for o in range(1, O):
            d = dz[r, o]
            for j in range(H):
                dy[r, j] += d * weight[o, j]
        for o in range(O):
            d = dz[r, o]
            dbias[o] += d
            for j in range(H):
                dweight[o, j] += d * y[r, j]


@kernel
def update(params, grads, slots, new, optimizer, hyper, step):
    """One optimizer update of the flat buffers, all or nothing: the updated parameters and
    state go to the scratch rows of ``new`` (1 + slots, n) first, and are copied back only if
    every one is finite. Returns whether they were.

    The formulas are :mod:`fastrnn.kernels.optim`'s element functions. Its kernels check and
    write in two passes with an early exit, which LLVM cannot vectorise (the Adam update of
    binary addition's 339 numbers took 4 µs that way); this one pass can be.
    """
    n = params.size
    lr = hyper[0]
    finite = True
    if optimizer == SGD:
        for i in range(n):
            p, v = optim.sgd_element(params[i], grads[i], slots[0, i], lr, hyper[1])
            new[0, i] = p
            new[1, i] = v
            finite &= math.isfinite(p) & math.isfinite(v)
    elif optimizer == ADAM:
        # As Optimizer: the corrections 1 - beta**t with a float power (not repeated products).
        correction1 = 1.0 - hyper[1] ** float(step)
        correction2 = 1.0 - hyper[2] ** float(step)
        for i in range(n):
            p, m, v = optim.adam_element(params[i], grads[i], slots[0, i], slots[1, i], lr, hyper[1], hyper[2],
                                         hyper[3], correction1, correction2)
            new[0, i] = p
            new[1, i] = m
            new[2, i] = v
            finite &= math.isfinite(p) & math.isfinite(v)
    else:
        for i in range(n):
            p, s = optim.rmsprop_element(params[i], grads[i], slots[0, i], lr, hyper[1], hyper[2])
            new[0, i] = p
            new[1, i] = s
            finite &= math.isfinite(p) & math.isfinite(s)
    if not finite:
        return False
    for i in range(n):
        params[i] = new[0, i]
    for k in range(slots.shape[0]):
        for i in range(n):
            slots[k, i] = new[k + 1, i]
    return True


@inlined
def run(cell, data, buffers, settings, out):
    """Batches ``first`` ... ``last - 1`` of the epoch whose permutation is ``order``, with
    ``data = (X, labels, values, order)``, ``buffers = (params, grads, slots, layout, module,
    module_grads, module_slots)`` and ``settings = (batch_size, first, last, segments, config,
    hyper, module_hyper)``; see the module."""
    X, labels, values, order = data
    params, grads, slots, layout, module, module_grads, module_slots = buffers
    batch_size, first, last, segments, config, hyper, module_hyper = settings
    synthetic = config[C_SG] != 0.0
    module_scratch = np.empty((1 + module_slots.shape[0], module.size), X.dtype)
    sg_updates0 = out[O_SG_UPDATES]
    N, T, I = X.shape
    dtype = X.dtype
    p = layout.shape[0]
    H = layout[p - 2, 2]
    O = layout[p - 2, 1]
    S = steps.STATE_COUNTS[cell]
    loss = int(config[C_LOSS])
    last_only = config[C_READOUT_LAST] != 0.0
    summed = config[C_SUM] != 0.0
    truncate = int(config[C_TRUNCATE])
    clip = config[C_CLIP]
    optimizer = int(config[C_OPTIMIZER])
    option = int(config[C_OPTION])
    weight = _matrix(params, layout, p - 2)
    head_dw = _matrix(grads, layout, p - 2)
    head_db = _vector(grads, layout, p - 1)
    bias = _vector(params, layout, p - 1)
    counts = np.zeros(2, np.int64)
    scratch = np.empty((1 + slots.shape[0], params.size), dtype)
    updates = 0
    for batch in range(first, last):
        lo = batch * batch_size
        idx = order[lo:min(lo + batch_size, N)]
        B = idx.size
        # The batch, time-major.
        x = np.empty((T, B, I), dtype)
        for t in range(T):
            for b in range(B):
                for i in range(I):
                    x[t, b, i] = X[idx[b], t, i]
        L = labels.shape[1] if loss == SOFTMAX_CROSS_ENTROPY else values.shape[1]
        batch_labels = np.empty((L, B if loss == SOFTMAX_CROSS_ENTROPY else 0), labels.dtype)
        batch_values = np.empty((L, 0 if loss == SOFTMAX_CROSS_ENTROPY else B, O), dtype)
        for t in range(L):
            for b in range(B):
                if loss == SOFTMAX_CROSS_ENTROPY:
                    batch_labels[t, b] = labels[idx[b], t]
                else:
                    for o in range(O):
                        batch_values[t, b, o] = values[idx[b], t, o]
        state = np.zeros((S, B, H), dtype)
        # Sums as the Python loop adds them: per batch, then into the epoch's (``out``, carried
        # from call to call, so that however an epoch is cut into calls its sums are the same).
        batch_loss = 0.0
        batch_positions = 0
        counts[:] = 0
        ends = np.empty((segments.shape[0], S, B, H), dtype)  # the state at each chunk's end
        for chunk in range(segments.shape[0]):
            window, start, end = segments[chunk, 0], segments[chunk, 1], segments[chunk, 2]
            following = segments[chunk + 1, 0] if chunk + 1 < segments.shape[0] else end
            xw = x[window:end]
            y = np.empty((end - window, B, H), dtype)
            final = ends[chunk]
            tape = core_forward(cell, option, xw, state, params, layout, y, final)
            count = 0
            value = 0.0
            entering = state
            dstart = np.empty((S, B, H), dtype)
            has_loss = not (last_only and end < T)
            inject = synthetic and end < T
            if not has_loss and not inject:
                # No loss reaches this chunk: its gradient is zero, and the update still counts.
                grads[:] = 0.0
            else:
                dy = np.zeros((end - window, B, H), dtype)
                if has_loss:
                    if last_only:
                        own = y[end - window - 1]
                        t_lo = 0
                    else:
                        own = y[start - window:].reshape(((end - start) * B, H))
                        t_lo = start
                    count = own.shape[0]
                    z = np.empty((count, O), dtype)
                    dz = np.empty((count, O), dtype)
                    value = head_loss(own, batch_labels, batch_values, t_lo, weight, bias, loss,
                                      1.0 if summed else float(count), z, dz, counts)
                    if not math.isfinite(value):
                        out[O_VALUE] = value / count
                        out[O_BATCH] = batch
                        out[O_CHUNK] = chunk
                        return LOSS_NOT_FINITE
                    if not all_finite(dz.reshape(dz.size)):
                        out[O_BATCH] = batch
                        out[O_CHUNK] = chunk
                        return OUTPUT_GRADIENT_NOT_FINITE
                    # The head's gradients, and the gradient at the core's outputs.
                    at = dy[end - window - 1] if last_only else dy[start - window:].reshape((count, H))
                    head_backward(dz, own, weight, head_dw, head_db, at)
                else:
                    head_dw[...] = 0.0
                    head_db[...] = 0.0
                dfinal = np.zeros((S, B, H), dtype)
                if inject:
                    # The synthetic gradient λ M(s_end) at the window's final state.
                    predicted = np.empty((B, S * H), dtype)
                    module_output(final, module, predicted)
                    for j in range(S * H):
                        for b in range(B):
                            dfinal[j // H, b, j % H] = config[C_SG_SCALE] * predicted[b, j]
                core_backward(cell, option, xw, params, layout, tape, dy, dfinal, truncate, grads, dstart)
            # The state entering the next window, computed by the first forward that reached its
            # step (as the Python loop's states by step): the start, an earlier chunk's end, this
            # one's, or a step inside this window, with the parameters of this forward.
            earlier = -1
            for c in range(chunk + 1):
                if segments[c, 2] == following:
                    earlier = c
                    break
            if following == 0:
                state = np.zeros((S, B, H), dtype)
            elif earlier >= 0:
                state = ends[earlier]
            else:
                state = np.empty((S, B, H), dtype)
                state_at(cell, tape, following - window, state)
            if clip > 0.0:
                norm = 0.0
                for i in range(grads.size):
                    norm += float(grads[i]) * float(grads[i])
                norm = math.sqrt(norm)
                if norm > clip:
                    scale = clip / norm
                    for i in range(grads.size):
                        grads[i] *= scale
            step = int(config[C_STEPS]) + updates + 1
            # A refused update changes nothing.
            if not update(params, grads, slots, scratch, optimizer, hyper, step):
                out[O_BATCH] = batch
                out[O_CHUNK] = chunk
                return UPDATE_NOT_FINITE
            updates += 1
            out[O_UPDATES] += 1
            if synthetic and window > 0:
                # M's prediction at this boundary learns from the gradient that reached it.
                step = int(config[C_SG_STEPS]) + int(out[O_SG_UPDATES] - sg_updates0) + 1
                out[O_SG_LOSS] += train_module(entering, dstart, module, module_grads, module_slots, module_scratch,
                                               module_hyper, step, out)
            batch_loss += value
            batch_positions += count
        out[O_LOSS] += batch_loss
        out[O_POSITIONS] += batch_positions
        out[O_CORRECT] += counts[0]
        out[O_JUDGED] += counts[1]
    return OK


# -- the synthetic-gradient module M(s) = s A + c (see fastrnn.synthetic_gradients) ---------
#
# ``module`` holds A (F, F) then c (F,), F = S*H features of a state (S, B, H) flattened per
# sample as fastrnn.synthetic_gradients.flatten_state does: h, or h and c side by side for an LSTM.

@kernel
def module_output(state, module, out):
    """out (B, F) = M(s) = s A + c for the state s (S, B, H), flattened."""
    S, B, H = state.shape
    F = S * H
    A = module[:F * F].reshape((F, F))
    for b in range(B):
        for j in range(F):
            out[b, j] = 0.0
        for k in range(F):
            s = state[k // H, b, k % H]
            for j in range(F):
                out[b, j] += s * A[k, j]
        for j in range(F):
            out[b, j] += module[F * F + j]


@kernel
def train_module(state, target, module, grads, slots, scratch, hyper, step, out):
    """One Adam update of M on (1/B) Σ ½‖M(s) - δ‖² for the state s and its gradient δ, both
    (S, B, H); returns that loss, before the update (a refused update changes nothing, and is
    not counted in ``out[O_SG_UPDATES]``), as fastrnn.synthetic_gradients.SyntheticGradients.train."""
    S, B, H = state.shape
    F = S * H
    error = np.empty((B, F), state.dtype)
    module_output(state, module, error)
    loss = 0.0
    for b in range(B):
        for j in range(F):
            e = error[b, j] - target[j // H, b, j % H]
            error[b, j] = e
            loss += e * e
    dA = grads[:F * F].reshape((F, F))
    dA[...] = 0.0
    for b in range(B):
        for k in range(F):
            s = state[k // H, b, k % H]
            for j in range(F):
                dA[k, j] += s * error[b, j]
    for j in range(F):
        total = 0.0
        for b in range(B):
            total += error[b, j]
        grads[F * F + j] = total / B
    for i in range(F * F):
        grads[i] /= B
    if update(module, grads, slots, scratch, _ADAM, hyper, step):
        out[O_SG_UPDATES] += 1
    return 0.5 * loss / B


# One compiled loop per cell, each passing its id as a constant (a global, which Numba types as a
# literal; ``steps.RNN`` would be typed as a plain int).
@kernel
def train_rnn(data, buffers, settings, out):
    return run(RNN, data, buffers, settings, out)


@kernel
def train_gru(data, buffers, settings, out):
    return run(GRU, data, buffers, settings, out)


@kernel
def train_lstm(data, buffers, settings, out):
    return run(LSTM, data, buffers, settings, out)


@kernel
def train_ugrnn(data, buffers, settings, out):
    return run(UGRNN, data, buffers, settings, out)


@kernel
def train_intersection(data, buffers, settings, out):
    return run(INTERSECTION, data, buffers, settings, out)


#: The training loop of each cell kernel module's name.
TRAIN = {"rnn": train_rnn, "gru": train_gru, "lstm": train_lstm, "ugrnn": train_ugrnn,
         "intersection": train_intersection}
