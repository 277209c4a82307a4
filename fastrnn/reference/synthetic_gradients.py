"""Reference of one decoupled (synthetic-gradient) training segment, written from the rules of
:mod:`fastrnn.synthetic` with nothing taken from its implementation or from :class:`fastrnn.Model`'s.

For one segment of K steps of a batch:

1. run the core forward from the start state s (a constant; None at the sequence's start);
2. the head z_t = W y_t + b and the loss's gradient at z, for the positions this segment holds;
3. the core's backward from those losses plus, at the final state, the injected gradient
   λ (s_end A + c) (nothing at the sequence's last segment);
4. the gradient that reaches the start state is δ_start; M's loss at that boundary is
   (1/B) Σ_batch ½ ‖s A + c − δ_start‖², whose gradient is (sᵀ e / B, Σ e / B), e = s A + c − δ_start.

States are flattened per sample by writing out, in order, every array the state holds: an (B, H)
array as it is, a stacked (d, B, H) array as its d entries side by side.
"""

import numpy as np


def _arrays(state):
    if isinstance(state, (tuple, list)):
        out = []
        for part in state:
            out.extend(_arrays(part))
        return out
    return [state]


def flatten(state):
    """(B, S): per sample, every state array's features, d entries of a stacked array in turn."""
    columns = []
    for array in _arrays(state):
        if array.ndim == 2:
            columns.append(array)
        else:
            columns.extend(array[i] for i in range(array.shape[0]))
    return np.concatenate(columns, axis=1)


def unflatten(flat, like):
    """Cut a (B, S) matrix back into arrays shaped like the state ``like``."""
    position = [0]

    def take(width):
        block = flat[:, position[0]:position[0] + width]
        position[0] += width
        return block

    def build(template):
        if isinstance(template, (tuple, list)):
            return type(template)(build(part) for part in template)
        if template.ndim == 2:
            return np.array(take(template.shape[1]))
        return np.stack([take(template.shape[2]) for _ in range(template.shape[0])])

    return build(like)


def softmax_cross_entropy(z, target):
    """Mean over positions of -log softmax(z)[target], and its gradient at z."""
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    count = target.size
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, target[..., None], 1.0, axis=-1)
    loss = -np.sum(onehot * np.log(p)) / count
    return loss, (p - onehot) / count


def decoupled_segment(core, weight, bias, x, target, state, A, c, scale, inject, last_only):
    """One segment; returns (core grads, head grads, final state, δ_start, M's loss and gradient).

    ``x`` (K, B, I) and ``target`` ((K, B) classes, or (B,) at the sequence's last step when
    ``last_only``; None when the segment has no loss) are time-major. Softmax cross-entropy loss.
    M's loss and gradient are None when ``state`` is None (the sequence's initial state).
    """
    y, final, tape = core.forward(x, state)
    dy = np.zeros_like(y)
    head = {"weight": np.zeros_like(weight), "bias": np.zeros_like(bias)}
    if target is not None:
        outputs = y[-1:] if last_only else y
        z = outputs @ weight.T + bias
        _, dz = softmax_cross_entropy(z, target[None] if last_only else target)
        head["weight"] = np.einsum("tbo,tbh->oh", dz, outputs)
        head["bias"] = dz.sum(axis=(0, 1))
        dy[-len(outputs):] = dz @ weight
    if inject:
        injected = unflatten(scale * (flatten(final) @ A + c), final)
    else:
        injected = None
    grads, _, delta_start = core.backward(tape, dy, injected)
    if state is None:
        return grads, head, final, delta_start, None, None
    s = flatten(state)
    error = s @ A + c - flatten(delta_start)
    B = s.shape[0]
    sg_loss = 0.5 * np.sum(error * error) / B
    return grads, head, final, delta_start, sg_loss, (s.T @ error / B, error.sum(axis=0) / B)
