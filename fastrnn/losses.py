"""Losses of :class:`fastrnn.Model`: value and gradient at the logits, link function and metrics.

Every loss is a mean over the *positions* it is given (a position is one sample at one step, or
one sample for ``readout="last"``), so that its value does not depend on batch size or chunking.
A caller that splits a batch into chunks passes ``count`` (the number of positions of the whole
batch) and sums the chunks' values.
"""

import numpy as np


def _log_softmax(z):
    """Stable log-softmax over the last axis: log p = z - max - log sum exp(z - max)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _log_sigmoid(z):
    """log σ(z) = -log(1 + e^{-z}), computed without overflow for any finite z."""
    return -np.logaddexp(0.0, -z)


class Loss:
    """A loss on logits z of shape (..., O) and targets of the matching shape."""

    name = None
    #: Whether targets are integer classes, one per position (shape (...,)), or floats (..., O).
    integer_targets = False
    has_accuracy = False

    def value_and_grad(self, z, target, count):
        """Sum over positions of the per-position loss, divided by ``count``, and its gradient at z."""
        raise NotImplementedError

    def link(self, z):
        """What ``predict`` returns for logits z."""
        raise NotImplementedError

    def correct(self, z, target):
        """Number of correct predictions, and how many were judged (for accuracy)."""
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    r"""-log softmax(z)[target] per position; targets are integer classes 0..O-1.

    .. math:: \ell = -z_y + \log \sum_j e^{z_j}, \quad \partial \ell / \partial z = \mathrm{softmax}(z) - e_y
    """

    name = "softmax_cross_entropy"
    integer_targets = True
    has_accuracy = True

    def value_and_grad(self, z, target, count):
        logp = _log_softmax(z)
        picked = np.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
        grad = np.exp(logp)
        np.put_along_axis(grad, target[..., None], np.take_along_axis(grad, target[..., None], -1) - 1.0, -1)
        return -picked.sum() / count, grad / count

    def link(self, z):
        return np.exp(_log_softmax(z))

    def correct(self, z, target):
        return int((z.argmax(axis=-1) == target).sum()), target.size


class SigmoidCrossEntropy(Loss):
    r"""Binary cross-entropy of σ(z) against targets in [0, 1], summed over the O outputs.

    .. math:: \ell = -y \log \sigma(z) - (1 - y) \log(1 - \sigma(z)), \quad
        \partial \ell / \partial z = \sigma(z) - y
    """

    name = "sigmoid_cross_entropy"
    has_accuracy = True

    def value_and_grad(self, z, target, count):
        value = -(target * _log_sigmoid(z) + (1.0 - target) * _log_sigmoid(-z)).sum()
        return value / count, (self.link(z) - target) / count

    def link(self, z):
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def correct(self, z, target):
        return int(((z > 0) == (target > 0.5)).sum()), target.size


class MeanSquaredError(Loss):
    r"""Squared error summed over the O outputs, halved: :math:`\ell = \tfrac12 \lVert z - y \rVert^2`."""

    name = "mse"

    def value_and_grad(self, z, target, count):
        diff = z - target
        return 0.5 * float((diff * diff).sum()) / count, diff / count

    def link(self, z):
        return z

    def correct(self, z, target):
        raise TypeError("mse has no accuracy")


LOSSES = {cls.name: cls for cls in (SoftmaxCrossEntropy, SigmoidCrossEntropy, MeanSquaredError)}
