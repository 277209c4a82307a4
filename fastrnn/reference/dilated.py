"""Reference stack of dilated layers: the direct recurrence over h_{t-d}, one step at a time.

Layer l of a stack computes

    h_t = cell(x_t, h_{t-d}),   y_t = the cell's output at step t

from its incoming state S (d entries, oldest first: step t < d reads S[t] as h_{t-d}) and returns
S'[i] = h_{T-d+i}. Each step is one call of the cell with T = 1, so this module knows nothing of
how the fast path groups steps; the cells themselves must be checked on their own (they are).

``truncate=k`` is the per-output horizon of :meth:`fastrnn.Cell.backward` counted in the layer's own transitions:
the gradient arriving at output t walks back through steps t, t-d, ..., t-k*d and stops there,
reaching the incoming state only if its walk arrives at a step t' < d. The gradient at S'[i]
walks like one more output of step T-d+i.

A layer is a cell (with ``forward``/``backward``), or a bidirectional pair (with ``forward_cell``
and ``backward_cell``), whose second cell runs the same recurrence over the reversed sequence.
"""

import numpy as np


def _leafwise(fn, *states):
    """Apply ``fn`` to the arrays of equally nested state tuples."""
    if isinstance(states[0], tuple):
        return tuple(_leafwise(fn, *parts) for parts in zip(*states))
    return fn(*states)


def _add(a, b):
    return _leafwise(np.add, a, b)


def layer_forward(cell, d, x, S):
    """One dilated layer: returns ``y (T, B, O)``, the new state, and the per-step tapes."""
    history = [_leafwise(lambda s: s[i], S) for i in range(d)]  # history[j] = h_{j-d}
    ys, tapes = [], []
    for t in range(len(x)):
        y_t, h_t, tape_t = cell.forward(x[t:t + 1], history[t])
        history.append(h_t)
        ys.append(y_t[0])
        tapes.append(tape_t)
    new_state = _leafwise(lambda *entries: np.stack(entries), *history[len(x):])
    return np.stack(ys), new_state, tapes


def layer_backward(cell, d, tapes, dy, dS, truncate):
    """Backward of :func:`layer_forward`: returns ``grads``, ``dx`` and the gradient at S."""
    T = len(tapes)
    grads = {}
    dx = [None] * T
    zero_state = _leafwise(lambda s: np.zeros_like(s[0]), dS)
    zero_out = np.zeros_like(dy[0])

    def back_step(t, dout, dstate):
        """Through step t: adds its parameter and input gradients, returns the one at h_{t-d}."""
        g, dx_t, dprev = cell.backward(tapes[t], dout[None], dstate)
        for name, value in g.items():
            grads[name] = grads[name] + value if name in grads else value
        dx[t] = dx_t[0] if dx[t] is None else dx[t] + dx_t[0]
        return dprev

    if truncate is None:
        # d_history[j] is the gradient at history[j]; step t reads history[t], writes history[t+d].
        d_history = [zero_state] * T + [_leafwise(lambda s: s[i], dS) for i in range(d)]
        # With T < d, entries T..d-1 of S are carried into S' unchanged: so are their gradients.
        for t in range(T - 1, -1, -1):
            d_history[t] = _add(d_history[t], back_step(t, dy[t], d_history[t + d]))
        dS0 = d_history[:d]
    else:
        dS0 = [zero_state] * d
        walks = [(t, dy[t], zero_state) for t in range(T)]
        for i in range(d):
            t = T - d + i
            entry = _leafwise(lambda s: s[i], dS)
            if t >= 0:
                walks.append((t, zero_out, entry))
            else:
                dS0[T + i] = _add(dS0[T + i], entry)  # an incoming entry carried into S'
        for t, dout, dstate in walks:
            for _ in range(truncate + 1):
                dstate = back_step(t, dout, dstate)
                dout = zero_out  # output t enters at step t only
                if t < d:  # the walk reached the incoming state
                    dS0[t] = _add(dS0[t], dstate)
                    break
                t -= d
    dS0 = _leafwise(lambda *entries: np.stack(entries), *dS0)
    return grads, np.stack(dx), dS0


def forward(layers, dilations, x, states):
    """Every layer bottom-up. Returns the top ``y``, the list of new states and the tapes."""
    finals, tapes, y = [], [], x
    for layer, d, S in zip(layers, dilations, states):
        if hasattr(layer, "backward_cell"):
            y_f, S_f, tapes_f = layer_forward(layer.forward_cell, d, y, S[0])
            y_b, S_b, tapes_b = layer_forward(layer.backward_cell, d, y[::-1], S[1])
            y, S, tape = np.concatenate([y_f, y_b[::-1]], axis=2), (S_f, S_b), (tapes_f, tapes_b)
        else:
            y, S, tape = layer_forward(layer, d, y, S)
        finals.append(S)
        tapes.append(tape)
    return y, finals, tapes


def backward(layers, dilations, tapes, dy, dstates, truncate):
    """Every layer top-down. Returns per-layer grads, ``dx`` and the list of initial-state gradients."""
    n = len(layers)
    grads, dS0, g = [None] * n, [None] * n, dy
    for i in range(n - 1, -1, -1):
        layer, d, tape, dS = layers[i], dilations[i], tapes[i], dstates[i]
        if hasattr(layer, "backward_cell"):
            split = layer.forward_cell.output_size
            g_f, dx_f, dS_f = layer_backward(layer.forward_cell, d, tape[0], g[:, :, :split], dS[0], truncate)
            g_b, dx_b, dS_b = layer_backward(layer.backward_cell, d, tape[1], g[::-1, :, split:], dS[1], truncate)
            grads[i] = {**{f"forward.{k}": v for k, v in g_f.items()},
                        **{f"backward.{k}": v for k, v in g_b.items()}}
            g, dS0[i] = dx_f + dx_b[::-1], (dS_f, dS_b)
        else:
            grads[i], g, dS0[i] = layer_backward(layer, d, tape, g, dS, truncate)
    return grads, g, dS0
