"""Reference vanilla RNN in plain NumPy, written from the equations to be read and trusted.

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    h_t = f(a_t),  f in {tanh, relu, sigmoid} (``nonlinearity`` = TANH, RELU, SIGMOID),  y_t = h_t

Same function names and signatures as :mod:`fastrnn.kernels.rnn`. Shares no code with the
kernels: it is the oracle they are tested against.
"""

import numpy as np

from ._common import AffineGrads, bptt, copy_into, sigmoid

# Codes of the ``nonlinearity`` argument, as in the kernels.
TANH, RELU, SIGMOID = 0, 1, 2
NONLINEARITIES = {"tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}

ACTIVATIONS = {
    TANH: np.tanh,
    RELU: lambda a: np.maximum(a, 0.0),
    SIGMOID: sigmoid,
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
    """Backpropagation through time with the per-output horizon ``truncate`` (see ``_common.bptt``).

    Returns ``dW_ih, dW_hh, db_ih, db_hh, dx (T, B, I), dh0 (B, H)``.
    """
    fprime = DERIVATIVES[nonlinearity]
    grads = AffineGrads(weight_ih, weight_hh, bias_ih, bias_hh)
    dx = np.zeros_like(x)

    def back_step(t, dout, dstate):
        (dh,) = dstate
        da = (dout + dh) * fprime(hs[t + 1])
        grads.add(x[t], hs[t], da)
        dx[t] += da @ weight_ih
        return (da @ weight_hh,)

    (dh0,) = bptt(back_step, dy, (dh_n,), truncate)
    return *grads.as_tuple(), dx, dh0


def forward_into(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, y, h_n, hs):
    """:func:`forward`, writing into given arrays ``y``, ``h_n``, ``hs``."""
    copy_into((y, h_n, hs), forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity))


def backward_into(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate,
                  dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0):
    """:func:`backward`, writing the gradients into given arrays."""
    copy_into((dweight_ih, dweight_hh, dbias_ih, dbias_hh, dx, dh0),
              backward(x, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, hs, dy, dh_n, truncate))
