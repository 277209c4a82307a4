"""Optimizers: SGD with momentum, Adam and RMSProp, updating a live parameter dict in place.

An optimizer keeps its state per parameter name, so the same object can be saved with a model
(``state_arrays`` / ``load_state_arrays``) and a resumed run continues bit for bit. The updates
themselves run in :mod:`fastrnn.kernels.optim`, all or nothing: an update that would make any
value non-finite is refused and changes nothing.
"""

import math

import numpy as np

from . import _validation as v
from .kernels import optim as kernels


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``step(params, grads)`` applies one update in place."""

    #: Names of the per-parameter state arrays, in the order ``state_arrays`` stores them.
    slots = ()

    def __init__(self, lr):
        self.lr = _check_rate("lr", lr)
        self.steps = 0
        self.state = {}

    def config(self):
        """Hyper-parameters, as keyword arguments of the constructor."""
        return {"lr": self.lr}

    def _slots(self, name, param):
        if name not in self.state:
            self.state[name] = {slot: np.zeros_like(param) for slot in self.slots}
        return self.state[name]

    def step(self, params, grads):
        """Update every ``params[name]`` in place from ``grads[name]``.

        Returns True; or False, changing nothing (neither parameters nor optimizer state), when
        a gradient or an updated value would not be finite.
        """
        pairs = [(params[name], np.ascontiguousarray(grad), self._slots(name, params[name]))
                 for name, grad in grads.items()]
        self.steps += 1
        if not all(self._update(param, grad, state, False) for param, grad, state in pairs):
            self.steps -= 1
            return False
        for param, grad, state in pairs:
            self._update(param, grad, state, True)
        return True

    def _update(self, param, grad, state, write):
        """Check (``write=False``) or apply one parameter's update; returns whether it is finite."""
        raise NotImplementedError

    def state_arrays(self):
        """The optimizer's state as a flat dict of arrays (for saving)."""
        arrays = {"steps": np.array(self.steps)}
        for name, slots in self.state.items():
            for slot, value in slots.items():
                arrays[f"{slot}/{name}"] = value
        return arrays

    def load_state_arrays(self, arrays):
        """Inverse of :meth:`state_arrays`."""
        self.steps = int(arrays["steps"])
        self.state = {}
        for key, value in arrays.items():
            if key != "steps":
                slot, name = key.split("/", 1)
                self.state.setdefault(name, {})[slot] = np.array(value)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with (heavy-ball) momentum:

    .. math:: v \leftarrow \mu v + g, \quad \theta \leftarrow \theta - \eta v
    """

    slots = ("velocity",)

    def __init__(self, lr=0.1, momentum=0.0):
        super().__init__(lr)
        self.momentum = _check_rate("momentum", momentum)

    def config(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _update(self, param, grad, state, write):
        return kernels.sgd(param, grad, state["velocity"], self.lr, self.momentum, write)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015), with bias correction:

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \theta \leftarrow \theta - \eta \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}
    """

    slots = ("m", "v")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = _check_rate("beta1", beta1)
        self.beta2 = _check_rate("beta2", beta2)
        self.eps = _check_rate("eps", eps)

    def config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _update(self, param, grad, state, write):
        return kernels.adam(param, grad, state["m"], state["v"], self.lr, self.beta1, self.beta2, self.eps,
                            1.0 - self.beta1 ** self.steps, 1.0 - self.beta2 ** self.steps, write)


class RMSProp(Optimizer):
    r"""RMSProp (Tieleman & Hinton 2012):

    .. math:: s \leftarrow \rho s + (1-\rho) g^2, \quad \theta \leftarrow \theta - \eta g / (\sqrt{s} + \epsilon)
    """

    slots = ("square",)

    def __init__(self, lr=1e-3, rho=0.9, eps=1e-8):
        super().__init__(lr)
        self.rho = _check_rate("rho", rho)
        self.eps = _check_rate("eps", eps)

    def config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps}

    def _update(self, param, grad, state, write):
        return kernels.rmsprop(param, grad, state["square"], self.lr, self.rho, self.eps, write)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSProp}


def make_optimizer(optimizer):
    """An optimizer object from a name ("sgd", "adam", "rmsprop") or an Optimizer."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return OPTIMIZERS[v.check_choice("optimizer", optimizer, tuple(OPTIMIZERS))]()
    raise TypeError(f"optimizer: expected 'sgd', 'adam', 'rmsprop' or an Optimizer, got {type(optimizer).__name__}")


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping.
    """
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm
