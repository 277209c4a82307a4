"""What one window of training yields, and the running sums that make an epoch's metrics."""

from typing import NamedTuple


class WindowResult(NamedTuple):
    """One TBPTT window: its forward, the losses of its own steps, and its backward.

    ``grads`` is keyed as ``model.params`` (None when the loss or its gradient stopped being
    finite); ``final`` is the state at the window's end, ``dstart`` the gradient at its start
    state (None unless something was injected at the end).
    """

    loss: float  # summed over the window's positions
    positions: int
    correct: int
    judged: int
    grads: object
    final: object
    dstart: object


class Metrics:
    """Running sums of the loss (over positions), positions, correct and judged predictions, and
    of the synthetic-gradient module's loss (over its updates), added in the order they come."""

    __slots__ = ("loss", "positions", "correct", "judged", "sg_loss", "sg_count")

    def __init__(self, loss=0.0, positions=0, correct=0, judged=0, sg_loss=0.0, sg_count=0):
        self.loss, self.positions, self.correct, self.judged = loss, positions, correct, judged
        self.sg_loss, self.sg_count = sg_loss, sg_count

    def add(self, loss, positions, correct=0, judged=0):
        self.loss += loss
        self.positions += positions
        self.correct += correct
        self.judged += judged

    def add_window(self, result):
        self.add(result.loss, result.positions, result.correct, result.judged)

    def add_sg(self, loss, count=1):
        self.sg_loss += loss
        self.sg_count += count

    def merge(self, other):
        """Add another run's sums (a batch's into its epoch's)."""
        self.add(other.loss, other.positions, other.correct, other.judged)
        self.add_sg(other.sg_loss, other.sg_count)

    @property
    def mean_loss(self):
        return self.loss / max(self.positions, 1)

    def as_dict(self, accuracy, synthetic=False):
        """``{"loss", "accuracy" (if asked), "sg_loss" (with synthetic gradients)}``: the means."""
        metrics = {"loss": self.loss / self.positions}
        if accuracy:
            metrics["accuracy"] = self.correct / self.judged
        if synthetic:
            metrics["sg_loss"] = self.sg_loss / max(self.sg_count, 1)
        return metrics

    def __repr__(self):
        return (f"Metrics(loss={self.loss}, positions={self.positions}, correct={self.correct}, judged={self.judged}, "
                f"sg_loss={self.sg_loss}, sg_count={self.sg_count})")
