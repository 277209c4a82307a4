"""One training update (forward, backward, optimizer) of each built-in task's model, per backend.

The per-batch work of ``Model.fit``, through :meth:`fastrnn.Model.training_step` (what
``fastrnn train`` times against the reference).
"""

from fastrnn.tasks import TASKS

NAMES = list(TASKS)


class TimeTrainingStep:
    params = (NAMES, ["numba", "numpy"])
    param_names = ["task", "backend"]

    def setup(self, task, backend):
        task = TASKS[task]
        (X, Y), _ = task.data("small", seed=0)
        options = task.fit_kwargs()
        batch = options["batch_size"]
        model = task.model(backend=backend, seed=0, input_size=X.shape[2])
        self.step = model.training_step(X[:batch], Y[:batch], optimizer=options["optimizer"],
                                        tbptt=options.get("tbptt"), truncate=options.get("truncate"),
                                        synthetic_gradients=options.get("synthetic_gradients"))
        self.step()

    def time_training_step(self, task, backend):
        self.step()
