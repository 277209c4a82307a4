"""Optimizer updates for one parameter array, as kernels: one call instead of a dozen NumPy
operations per parameter, which at the binary-addition size was a third of a training step.

Each function works in two modes. With ``write=False`` it only checks that the gradient and
every updated value would be finite, changing nothing; with ``write=True`` it applies the update
in place. :meth:`fastrnn.optim.Optimizer.step` checks every parameter first and writes only if all
are finite, so a diverging update leaves the model as it was. Arithmetic is in float64 for
either dtype; arrays must be C-contiguous and of one dtype.
"""

import math

from ._jit import inlined, kernel

# The update of one element, written once: the kernels below and fit's compiled loop
# (:func:`fastrnn.kernels.training.update`) apply the same formulas through these.

@inlined
def sgd_element(p, g, velocity, lr, momentum):
    """(new parameter, new velocity)."""
    v = momentum * velocity + g
    return p - lr * v, v


@inlined
def adam_element(p, g, m, v, lr, beta1, beta2, eps, correction1, correction2):
    """(new parameter, new m, new v)."""
    m_new = beta1 * m + (1.0 - beta1) * g
    v_new = beta2 * v + (1.0 - beta2) * g * g
    return p - lr * (m_new / correction1) / (math.sqrt(v_new / correction2) + eps), m_new, v_new


@inlined
def rmsprop_element(p, g, square, lr, rho, eps):
    """(new parameter, new square)."""
    s_new = rho * square + (1.0 - rho) * g * g
    return p - lr * g / (math.sqrt(s_new) + eps), s_new


@kernel
def sgd(param, grad, velocity, lr, momentum, write):
    """v <- momentum v + g; param <- param - lr v. Returns whether everything is finite."""
    p, g, vel = param.reshape(-1), grad.reshape(-1), velocity.reshape(-1)
    for i in range(p.size):
        new, v = sgd_element(p[i], g[i], vel[i], lr, momentum)
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
        new, m_new, v_new = adam_element(p[i], g[i], mm[i], vv[i], lr, beta1, beta2, eps, correction1, correction2)
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
        new, s_new = rmsprop_element(p[i], g[i], s[i], lr, rho, eps)
        if not math.isfinite(new) or not math.isfinite(s_new):
            return False
        if write:
            s[i] = s_new
            p[i] = new
    return True
