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

    def _checked_pairs(self, params, grads):
        """(parameter, gradient, state) for every gradient, each checked to fit its parameter.

        The update kernels read and write all three element for element, so a gradient or a
        state array of another size would take them past an array's end: everything is checked
        before any kernel runs, and the error names the parameter.
        """
        pairs = []
        for name, grad in grads.items():
            param = params.get(name) if hasattr(params, "get") else None
            if not isinstance(param, np.ndarray):
                raise ValueError(f"grads[{name!r}]: no parameter of that name in params")
            if param.dtype not in v.FLOAT_DTYPES or not param.flags.c_contiguous or not param.flags.writeable:
                raise ValueError(f"params[{name!r}]: expected a writeable, C-contiguous float32 or float64 array, "
                                 f"got a {param.dtype.name} array with flags C_CONTIGUOUS={param.flags.c_contiguous}"
                                 f", WRITEABLE={param.flags.writeable}")
            if type(grad) is not np.ndarray or grad.dtype != param.dtype or grad.shape != param.shape \
                    or not grad.flags.c_contiguous:
                grad = v.as_gradient(f"grads[{name!r}]", grad, param)
            state = self._slots(name, param)
            for slot, value in state.items():
                if value.shape != param.shape or value.dtype != param.dtype or not value.flags.c_contiguous:
                    raise ValueError(f"optimizer state {slot}/{name}: expected a C-contiguous {param.dtype.name} "
                                     f"array of shape {param.shape}, got {value.dtype.name} {value.shape}")
            pairs.append((param, grad, state))
        return pairs

    def step(self, params, grads):
        """Update every ``params[name]`` in place from ``grads[name]``.

        Returns True; or False, changing nothing (neither parameters nor optimizer state), when
        a gradient or an updated value would not be finite.

        Raises
        ------
        ValueError, TypeError
            If a gradient has no parameter of its name, or not its parameter's shape, or is not
            real numbers; nothing is changed then either.
        """
        pairs = self._checked_pairs(params, grads)
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

    def load_state_arrays(self, arrays, params=None, source="optimizer state"):
        """Inverse of :meth:`state_arrays`, all or nothing.

        With ``params`` (the live parameter dict the optimizer will update) every state array
        must belong to one of them and have its shape and dtype, and each parameter with state
        must have all of its slots. A refused state raises ``ValueError`` naming ``source`` and
        leaves the optimizer as it was.
        """
        steps = arrays.get("steps") if hasattr(arrays, "get") else None
        if not isinstance(steps, np.ndarray) or steps.shape != () or steps.dtype.kind not in "iu" or steps < 0:
            raise ValueError(f"{source}: expected 'steps', a non-negative integer scalar, got {steps!r}")
        state = {}
        for key, value in arrays.items():
            if key == "steps":
                continue
            slot, _, name = key.partition("/")
            if slot not in self.slots or not name:
                raise ValueError(f"{source}: {key!r} is not a state of {type(self).__name__} "
                                 f"(slots: {', '.join(self.slots) or 'none'})")
            if not isinstance(value, np.ndarray) or value.dtype not in v.FLOAT_DTYPES:
                raise ValueError(f"{source}: {key!r} is not a float32 or float64 array")
            if params is not None:
                param = params.get(name)
                if not isinstance(param, np.ndarray):
                    raise ValueError(f"{source}: {key!r} belongs to no parameter of the model")
                if value.shape != param.shape or value.dtype != param.dtype:
                    raise ValueError(f"{source}: {key!r} has shape {value.shape} and dtype {value.dtype.name}, "
                                     f"expected {param.shape} and {param.dtype.name} (those of {name!r})")
            state.setdefault(name, {})[slot] = np.array(value, order="C")
        for name, slots in state.items():
            missing = [slot for slot in self.slots if slot not in slots]
            if missing:
                raise ValueError(f"{source}: {name!r} lacks its {', '.join(missing)} state")
        self.steps = int(steps)
        self.state = state

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
