"""One training update (forward, backward, optimizer) of each built-in task's model, per backend.

The per-batch work of ``Model.fit``, through :meth:`fastrnn.Model.training_step` (what
``fastrnn train`` times against the reference).
"""

from fastrnn import bench_training
from fastrnn.tasks import TASKS

NAMES = list(TASKS)


class TimeTrainingStep:
    params = (NAMES, ["numba", "numpy"])
    param_names = ["task", "backend"]

    def setup(self, task, backend):
        task = TASKS[task]
        (X, Y), _ = task.data("small", seed=0)
        batch = task.fit_kwargs().get("batch_size", getattr(task, "batch", 32))  # copy sets its batch itself
        self.step = bench_training.task_step(task, backend, X[:batch], Y[:batch])
        self.step()

    def time_training_step(self, task, backend):
        self.step()


class TrackTrainingSpeedup:
    """What ``fastrnn bench --training`` reports: a whole training step through ``Model`` on the
    numba backend against the numpy backend and against PyTorch (one thread), at the
    binary-addition size; a ratio of times measured side by side in one process."""

    params = (list(bench_training.CELLS), ["float64", "float32"])
    param_names = ["cell", "dtype"]
    unit = "x"
    timeout = 300

    def setup(self, cell, dtype):
        self.row = bench_training.bench_training(cell, (8, 16, 2, 16), dtype, repeat=3, min_time=0.02)

    def track_vs_numpy_backend(self, cell, dtype):
        return self.row.vs_numpy

    def track_vs_torch(self, cell, dtype):
        return float("nan") if self.row.vs_torch is None else self.row.vs_torch

    def track_of_kernel_ratio(self, cell, dtype):
        """The step's ratio against the numpy backend as a fraction of the kernels' own."""
        return self.row.of_kernel_ratio


class TrackBatchOneUpdates:
    """Binary addition in SGD updates of batch 1 through ``Model.fit`` (its compiled loop),
    against the numpy backend and the classic per-sample NumPy program."""

    unit = "x"
    timeout = 300

    def setup(self):
        self.seconds = bench_training.batch_one(updates=1000)

    def track_vs_numpy_backend(self):
        return self.seconds["fastrnn numpy"] / self.seconds["fastrnn numba"]

    def track_vs_classic_program(self):
        return self.seconds["classic NumPy program"] / self.seconds["fastrnn numba"]
