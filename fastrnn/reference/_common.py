"""What every reference cell shares: a stable logistic function and the truncated-BPTT walk.

Nothing here is shared with :mod:`fastrnn.kernels`; the walk is written as the definition of
truncation reads (the per-output horizon of :meth:`fastrnn.Cell.backward`), not as the kernels compute it.
"""

import numpy as np


def sigmoid(a):
    """1 / (1 + exp(-a)), written with exp(-|a|) only, so that large |a| cannot overflow."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class AffineGrads:
    """Gradients of the affine part every cell shares, a = W_ih x + b_ih and W_hh h + b_hh, summed over steps.

    ``add`` takes one step's input ``x_t (B, I)``, previous state ``h_prev (B, H)`` and the
    gradients at the input-side and hidden-side pre-activations (the same array for every cell
    but the GRU, whose n block sees the reset gate on the hidden side only).
    """

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh):
        self.weight_ih = np.zeros_like(weight_ih)
        self.weight_hh = np.zeros_like(weight_hh)
        self.bias_ih = np.zeros_like(bias_ih)
        self.bias_hh = np.zeros_like(bias_hh)

    def add(self, x_t, h_prev, d_input, d_hidden=None):
        d_hidden = d_input if d_hidden is None else d_hidden
        self.weight_ih += d_input.T @ x_t
        self.weight_hh += d_hidden.T @ h_prev
        self.bias_ih += d_input.sum(axis=0)
        self.bias_hh += d_hidden.sum(axis=0)

    def as_tuple(self):
        """``dW_ih, dW_hh, db_ih, db_hh``."""
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh


def bptt(back_step, dy, dstate, truncate):
    """Backpropagation through time with the per-output horizon ``truncate``.

    Parameters
    ----------
    back_step : callable
        ``back_step(t, dout, dstate) -> dstate_prev``: given the gradient ``dout`` at step t's
        output and the tuple ``dstate`` at the state it produced, adds step t's parameter and
        input gradients to the caller's accumulators and returns the gradient at the state that
        entered step t.
    dy : ndarray, shape (T, B, H_out)
        Gradient at every output.
    dstate : tuple of ndarray
        Gradient at the final state, one array per state part.
    truncate : int or None
        None or -1: full BPTT, one backward sweep. k >= 0: the gradient of each output t walks
        back on its own through steps t, t-1, ..., max(0, t-k) and stops; only a walk that
        reaches step 0 also reaches the initial state. ``dstate`` walks with output T-1.

    Returns
    -------
    tuple of ndarray
        Gradient at the initial state.
    """
    T = len(dy)
    if truncate is None or truncate < 0:
        d = dstate
        for t in range(T - 1, -1, -1):
            d = back_step(t, dy[t], d)
        return d
    zeros = tuple(np.zeros_like(part) for part in dstate)
    d0 = zeros
    for t in range(T):
        d = dstate if t == T - 1 else zeros
        dout = dy[t]
        first = max(0, t - truncate)
        for s in range(t, first - 1, -1):
            d = back_step(s, dout, d)
            dout = np.zeros_like(dout)  # output t enters at step t only
        if first == 0:
            d0 = tuple(a + b for a, b in zip(d0, d))
    return d0


def copy_into(outs, values):
    """The ``_into`` forms: write each computed array into the caller's array."""
    for out, value in zip(outs, values):
        out[...] = value
