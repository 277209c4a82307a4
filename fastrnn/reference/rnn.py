"""Reference vanilla RNN in plain NumPy, written from the equations to be read and trusted.

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    h_t = f(a_t),  f in {tanh, relu, sigmoid} (``nonlinearity`` = TANH, RELU, SIGMOID),  y_t = h_t

Same function names and signatures as :mod:`fastrnn.kernels.rnn`. Shares no code with the
kernels: it is the oracle they are tested against.
"""

import numpy as np


def _sigmoid(a):
    # Written with exp of -|a| only, so that large |a| cannot overflow.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# Codes of the ``nonlinearity`` argument, as in the kernels.
TANH, RELU, SIGMOID = 0, 1, 2
NONLINEARITIES = {"tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}

ACTIVATIONS = {
    TANH: np.tanh,
    RELU: lambda a: np.maximum(a, 0.0),
    SIGMOID: _sigmoid,
}

# Derivative f'(a) expressed through the output h = f(a).
DERIVATIVES = {
    TANH: lambda h: 1.0 - h * h,
    RELU: lambda h: (h > 0).astype(h.dtype),
    SIGMOID: lambda h: h * (1.0 - h),
}


def forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity):
    """Run the RNN over a sequence.

    Returns ``y (T, B, H)``, the final state ``h_n (B, H)`` and the tape ``hs (T+1, B, H)``
    (all hidden states, ``hs[0] = h0``).
    """
    f = ACTIVATIONS[nonlinearity]
    T = x.shape[0]
    hs = [h0]
    for t in range(T):
        a = x[t] @ weight_ih.T + bias_ih + hs[t] @ weight_hh.T + bias_hh
        hs.append(f(a).astype(x.dtype))
    hs = np.stack(hs)
    return hs[1:].copy(), hs[T].copy(), hs


def backward(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate):
    """Backpropagation through time with the per-output horizon ``truncate``.

    ``truncate = -1`` (or None): full BPTT, one backward sweep over the whole sequence.
    ``truncate = k >= 0``: the gradient of each output t walks back on its own through steps
    t, t-1, ..., max(0, t-k) and stops there; only if that walk reaches step 0 does it also
    reach the initial state. ``dh_n`` is treated as one more output of step T-1.

    Returns ``dW_ih, dW_hh, db_ih, db_hh, dx (T, B, I), dh0 (B, H)``.
    """
    fprime = DERIVATIVES[nonlinearity]
    T = x.shape[0]
    grads = {
        "weight_ih": np.zeros_like(weight_ih),
        "weight_hh": np.zeros_like(weight_hh),
        "bias_ih": np.zeros_like(bias_ih),
        "bias_hh": np.zeros_like(bias_hh),
    }
    dx = np.zeros_like(x)

    def back_through_step(t, dh):
        """Given dL/dh_t, add step t's parameter and input gradients; return dL/dh_{t-1}."""
        da = dh * fprime(hs[t + 1])
        grads["weight_ih"] += da.T @ x[t]
        grads["weight_hh"] += da.T @ hs[t]
        grads["bias_ih"] += da.sum(axis=0)
        grads["bias_hh"] += da.sum(axis=0)
        dx[t] += da @ weight_ih
        return da @ weight_hh

    if truncate is None or truncate < 0:
        dh = dh_n.copy()
        for t in range(T - 1, -1, -1):
            dh = back_through_step(t, dh + dy[t])
        dh0 = dh
    else:
        dh0 = np.zeros_like(dh_n)
        for t in range(T):
            dh = dy[t] + dh_n if t == T - 1 else dy[t].copy()
            first = max(0, t - truncate)
            for s in range(t, first - 1, -1):
                dh = back_through_step(s, dh)
            if first == 0:
                dh0 += dh
    return grads["weight_ih"], grads["weight_hh"], grads["bias_ih"], grads["bias_hh"], dx, dh0


def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, y, h_n, hs):
    """:func:`forward`, writing into given arrays ``y``, ``h_n``, ``hs``."""
    for out, value in zip((y, h_n, hs), forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity)):
        out[...] = value


def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays."""
    grads = backward(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate)
    for out, value in zip((dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0), grads):
        out[...] = value
