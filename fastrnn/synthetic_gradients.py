r"""Decoupled training with synthetic gradients (Jaderberg et al. 2016, "Decoupled Neural
Interfaces using Synthetic Gradients"), as a :meth:`fastrnn.Model.fit` option.

Truncated BPTT cuts the gradient at every segment boundary. A synthetic-gradient module predicts
the cut-off part, the gradient that the rest of the sequence would send back into the boundary
state, from that state alone, so each segment can update at once. The rules, exactly:

- The sequence is consumed in segments of K steps (``tbptt=K``), the state carried forward as a
  constant.
- The module is linear, :math:`M(s) = s A + c`, on the core's full state at a boundary, flattened
  per sample: h; h and c concatenated for an LSTM; every layer's state (every stored dilated entry)
  for a stack. A and c start at zero, so training starts as plain TBPTT(K).
- After segment k's forward, its backward receives the segment's own losses plus, at its final
  state, the injected gradient :math:`\lambda M(s_{end})` (λ = ``scale``; M's output is a constant
  here). Nothing is injected at the last segment of a sequence. The core's parameters are updated
  right after this backward, before the next segment's forward.
- The same backward yields the gradient at the segment's start state, :math:`\delta_{start}`: the
  bootstrapped target for the prediction :math:`M(s_{start})` made at that boundary (the end of
  segment k-1). M is trained at every boundary the core produced (not at the sequence's initial
  state) on :math:`\frac{1}{B} \sum_{batch} \tfrac12 \lVert M(s) - \delta_{start} \rVert^2`, with its
  own optimizer and learning rate. Nothing of this loss flows into the core.
"""

import numpy as np

from . import _validation as v
from .layer import leaves
from .optim import Adam


def state_size(core):
    """S, the number of features of a core's flattened state (see :func:`flatten_state`)."""
    return core.state_size()


def flatten_state(state):
    """A core state as one (B, S) matrix: (B, H) leaves as they are, a stack's (d, B, H) leaves
    as (B, d*H), all side by side in the order of :func:`fastrnn.layer.leaves`."""
    parts = []
    for leaf in leaves(state):
        parts.append(leaf if leaf.ndim == 2 else np.swapaxes(leaf, 0, 1).reshape(leaf.shape[1], -1))
    return np.concatenate(parts, axis=1)


def unflatten_state(flat, like):
    """Inverse of :func:`flatten_state`, shaped like the state ``like``."""
    offset = 0

    def rebuild(template):
        nonlocal offset
        if isinstance(template, (tuple, list)):
            return type(template)(rebuild(part) for part in template)
        width = template.size // template.shape[-2] if template.ndim == 3 else template.shape[1]
        block = flat[:, offset:offset + width]
        offset += width
        if template.ndim == 2:
            return np.ascontiguousarray(block)
        d, B, H = template.shape
        return np.ascontiguousarray(np.swapaxes(block.reshape(B, d, H), 0, 1))

    return rebuild(like)


class SyntheticGradients:
    """The linear synthetic-gradient module M(s) = s A + c and its training settings.

    Parameters
    ----------
    scale : float
        λ, the factor on the injected gradient. The default 0.1 is Jaderberg et al.'s.
    lr : float
        Learning rate of M's own optimizer (Adam). The default 1e-5, well below a core's usual
        1e-3, is what re-implementations of the paper use: M learns from a target that moves with
        the core, and a fast M chases it. Measured on ``recall-sg`` (20 seeds, ``fastrnn train
        recall-sg --compare 20``): λ = 1 and lr = 1e-3 gave mean final test accuracy 0.72, these
        defaults 0.90, plain TBPTT(4) 0.58.

    Attributes
    ----------
    A : ndarray, shape (S, S), and c : ndarray, shape (S,)
        Created at zero by the first :meth:`fastrnn.Model.fit` that uses this object; kept
        between fits (and in checkpoints).
    """

    def __init__(self, scale=0.1, lr=1e-5):
        self.scale = float(v.check_finite_number("scale", scale))
        self.lr = float(v.check_finite_number("lr", lr, minimum=0.0))
        self.A = None
        self.c = None
        self.optimizer = Adam(self.lr)

    @property
    def params(self):
        return {"A": self.A, "c": self.c}

    def prepare(self, size, dtype):
        """Zero A and c for a state of ``size`` features, unless they already fit."""
        if self.A is None or self.A.shape != (size, size) or self.A.dtype != dtype:
            self.A = np.zeros((size, size), dtype)
            self.c = np.zeros(size, dtype)
            self.optimizer = Adam(self.lr)

    def predict(self, flat):
        """M(s) for a (B, S) batch of flattened states."""
        return flat @ self.A + self.c

    def inject(self, state):
        """λ M(s_end), shaped like the state, for the backward of a segment that ended in ``state``."""
        return unflatten_state(self.scale * self.predict(flatten_state(state)), state)

    def train(self, state, target):
        """One update of A and c on (1/B) Σ ½‖M(s) - δ‖²; returns that loss (before the update)."""
        s = flatten_state(state)
        error = self.predict(s) - flatten_state(target)
        B = s.shape[0]
        loss = 0.5 * float(np.vdot(error, error)) / B
        self.optimizer.step(self.params, {"A": s.T @ error / B, "c": error.sum(axis=0) / B})
        return loss

    def __repr__(self):
        return f"SyntheticGradients(scale={self.scale}, lr={self.lr})"
