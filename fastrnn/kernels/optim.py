"""Optimizer updates for one parameter array, as kernels: one call instead of a dozen NumPy
operations per parameter, which at the binary-addition size was a third of a training step.

Each function works in two modes. With ``write=False`` it only checks that the gradient and
every updated value would be finite, changing nothing; with ``write=True`` it applies the update
in place. :meth:`fastrnn.optim.Optimizer.step` checks every parameter first and writes only if all
are finite, so a diverging update leaves the model as it was. Arithmetic is in float64 for
either dtype; arrays must be C-contiguous and of one dtype.
"""

import math

from ._jit import kernel


@kernel
def sgd(param, grad, velocity, lr, momentum, write):
    """v <- momentum v + g; param <- param - lr v. Returns whether everything is finite."""
    p, g, vel = param.reshape(-1), grad.reshape(-1), velocity.reshape(-1)
    for i in range(p.size):
        v = momentum * vel[i] + g[i]
        new = p[i] - lr * v
        if not math.isfinite(new) or not math.isfinite(v):
            return False
        if write:
            vel[i] = v
            p[i] = new
    return True


@kernel
def adam(param, grad, m, v, lr, beta1, beta2, eps, correction1, correction2, write):
    """Adam with bias corrections ``correction1 = 1 - beta1**t``, ``correction2 = 1 - beta2**t``."""
    p, g, mm, vv = param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
    for i in range(p.size):
        gi = g[i]
        m_new = beta1 * mm[i] + (1.0 - beta1) * gi
        v_new = beta2 * vv[i] + (1.0 - beta2) * gi * gi
        new = p[i] - lr * (m_new / correction1) / (math.sqrt(v_new / correction2) + eps)
        if not math.isfinite(new) or not math.isfinite(v_new):
            return False
        if write:
            mm[i] = m_new
            vv[i] = v_new
            p[i] = new
    return True


@kernel
def rmsprop(param, grad, square, lr, rho, eps, write):
    """s <- rho s + (1 - rho) g^2; param <- param - lr g / (sqrt(s) + eps)."""
    p, g, s = param.reshape(-1), grad.reshape(-1), square.reshape(-1)
    for i in range(p.size):
        gi = g[i]
        s_new = rho * s[i] + (1.0 - rho) * gi * gi
        new = p[i] - lr * gi / (math.sqrt(s_new) + eps)
        if not math.isfinite(new) or not math.isfinite(s_new):
            return False
        if write:
            s[i] = s_new
            p[i] = new
    return True
