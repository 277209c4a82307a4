"""One flat buffer per model, and the compiled training loop over it.

A :class:`fastrnn.Model` whose core is one cell on the numba backend keeps all its parameters in
one array, ``model.params`` being views of it by name; :meth:`Model.fit` then trains through
:mod:`fastrnn.kernels.training`, one compiled call per block of batches, with the gradients and
the optimizer state in flat buffers of the same layout, synthetic gradients included. Everything
else (stacks, the numpy backend, data-parallel shards, optimizers of your own) goes through the
Python loop of :mod:`fastrnn.training`, which gives the same history.
"""

import time

import numpy as np

from .cells import Cell
from .compilation import first_call
from .kernels import training as kernels
from .kernels._jit import entry_point
from .optim import SGD, Adam, RMSProp

_OPTIMIZERS = {SGD: kernels.SGD, Adam: kernels.ADAM, RMSProp: kernels.RMSPROP}
_LOSSES = {"softmax_cross_entropy": kernels.SOFTMAX_CROSS_ENTROPY,
           "sigmoid_cross_entropy": kernels.SIGMOID_CROSS_ENTROPY, "mse": kernels.MSE}

# A block of batches runs as one compiled call, sized to take about this long, so that a
# progress bar moves and Ctrl-C is answered (the interpreter sees signals between calls).
BLOCK_SECONDS = 0.1


class FlatParameters:
    """The parameters of a one-cell model in one array, in the kernels' order: the cell's (its
    layout, absent ones taking no room), then ``head.weight`` (O, H), ``head.bias`` (O,).

    ``model.params`` holds views of :attr:`buffer`. A name assigned a new array since (the
    parameters are the user's to replace) is copied back in by :meth:`sync`.
    """

    @staticmethod
    def applies(core):
        """Whether a model of this core keeps its parameters flat: one cell on the numba backend,
        whose kernels the compiled loop calls."""
        return isinstance(core, Cell) and core.backend == "numba"

    def __init__(self, model):
        core = model.core
        entries = [(core.params, name, shape) for name, shape, _ in core._layout]
        entries += [(model.head.params, "weight", model.head.params["weight"].shape),
                    (model.head.params, "bias", model.head.params["bias"].shape)]
        self.layout = np.zeros((len(entries), 3), np.int64)
        offset = 0
        for k, (_, _, shape) in enumerate(entries):
            self.layout[k] = offset, shape[0], shape[1] if len(shape) == 2 else 0
            offset += int(np.prod(shape))
        self.buffer = np.zeros(offset, model.dtype)
        # (its dict, its name there, its index in the layout, its view) of each present parameter
        self._entries = [(params, name, k, self.view(self.buffer, k)) for k, (params, name, shape) in enumerate(entries)
                         if Cell._present(shape)]
        self.names = [("core." if params is core.params else "head.") + name for params, name, _, _ in self._entries]
        for params, name, _, view in self._entries:
            view[...] = params[name]
            params[name] = view

    def view(self, buffer, k):
        """Entry ``k``'s array in a buffer of this layout (a 1-d one, or a row of a 2-d one)."""
        offset, rows, columns = (int(n) for n in self.layout[k])
        if columns == 0:
            return buffer[offset:offset + rows]
        return buffer[offset:offset + rows * columns].reshape(rows, columns)

    def views(self, buffer):
        """{model parameter name: view} of every present entry in ``buffer``."""
        return {name: self.view(buffer, k) for name, (_, _, k, _) in zip(self.names, self._entries)}

    def sync(self, core):
        """Take back into the buffer any parameter the user replaced; the core checks each first."""
        core._param_list()  # a replaced core parameter of the wrong shape or dtype is refused here
        for params, name, _, view in self._entries:
            if params[name] is not view:
                array = np.asarray(params[name])
                if array.shape != view.shape:
                    raise ValueError(f"params[{name!r}]: expected shape {view.shape}, got {array.shape}")
                view[...] = array
                params[name] = view


def batch_order(order, batch_size):
    """The permutation ``order`` with the indices of each batch of ``batch_size`` sorted, as the
    Python loop takes them (``np.sort(order[lo:lo + batch_size])``), in one vectorised sort."""
    n = len(order)
    padded = np.full(-(-n // batch_size) * batch_size, n, order.dtype)  # n sorts after every index
    padded[:n] = order
    return np.ascontiguousarray(np.sort(padded.reshape(-1, batch_size), axis=1).reshape(-1)[:n])


def compiled_loop_applies(model, optimizer, sg, pool):
    """Whether :meth:`Model.fit` can train through the compiled loop."""
    return (model._flat is not None and pool is None and type(optimizer) in _OPTIMIZERS
            and (sg is None or type(sg.optimizer) is Adam))


def _state_buffer(optimizer, views, size, dtype):
    """The optimizer's state as one (slots, size) array whose rows ``views(row)`` splits by
    parameter name; the optimizer's state arrays become those views (their values copied in)."""
    slots = np.zeros((len(optimizer.slots), size), dtype)
    for k, slot in enumerate(optimizer.slots):
        for name, view in views(slots[k]).items():
            state = optimizer.state.setdefault(name, {})
            if slot in state:
                view[...] = state[slot]
            state[slot] = view
    return slots


def _hyper(optimizer):
    """An optimizer's settings in its constructor's order, lr first, as the kernel reads them."""
    return np.array(list(optimizer.config().values()), np.float64)


class CompiledLoop:
    """Gradients and optimizer state in flat buffers beside the model's, and the compiled loop.

    The optimizer's state arrays become views of :attr:`slots` (their values copied in), so that
    saving, a checkpoint and a later fit see every update.
    """

    def __init__(self, model, optimizer, segments, truncate, clip, synthetic=None):
        flat = model._flat
        flat.sync(model.core)
        self.model, self.optimizer, self.flat, self.synthetic = model, optimizer, flat, synthetic
        self.train = kernels.TRAIN[model.core._module]
        self.grads = np.zeros_like(flat.buffer)
        self.slots = _state_buffer(optimizer, flat.views, flat.buffer.size, model.dtype)
        self.segments = np.array(segments, np.int64).reshape(-1, 3)
        self.hyper = _hyper(optimizer)
        options = model.core._options()
        self.config = np.array([_LOSSES[model.loss.name], model.readout == "last", model.reduction == "sum",
                                -1 if truncate is None else truncate, -1.0 if clip is None else clip,
                                _OPTIMIZERS[type(optimizer)], 0, options[0] if options else 0,
                                synthetic is not None, 0.0 if synthetic is None else synthetic.scale, 0], np.float64)
        # The synthetic-gradient module: A and c in one buffer (empty without one), their Adam
        # state beside it; synthetic.A and .c become views of it.
        size = 0 if synthetic is None else synthetic.c.size
        self.module = np.zeros(size * size + size, model.dtype)
        self.module_grads = np.zeros_like(self.module)
        if synthetic is None:
            self.module_slots, self.module_hyper = np.zeros((2, 0), model.dtype), np.zeros(4)
        else:
            def views(buffer):
                return {"A": buffer[:size * size].reshape(size, size), "c": buffer[size * size:]}

            for name, view in views(self.module).items():
                view[...] = getattr(synthetic, name)
                setattr(synthetic, name, view)
            self.module_slots = _state_buffer(synthetic.optimizer, views, self.module.size, model.dtype)
            self.module_hyper = _hyper(synthetic.optimizer)
        self.batches_per_call = 1
        self.fresh = True  # the first call says when it has to compile

    def targets(self, Y):
        """(labels (N, L), values (N, L, O)) for the kernel, one of them empty."""
        model = self.model
        if model.loss.integer_targets:
            labels = np.ascontiguousarray(Y, np.intp).reshape(len(Y), -1)
            return labels, np.empty((len(Y), labels.shape[1], 0), model.dtype)
        values = np.ascontiguousarray(Y, model.dtype).reshape(len(Y), -1, model.output_size)
        return np.empty((len(Y), values.shape[1]), np.intp), values

    def run(self, X, targets, order, batch_size, first, last, out=None):
        """Batches ``first`` ... ``last - 1`` in one call, adding into the running sums ``out``
        (the loss, positions, correct, judged and updates; a new array by default); returns
        (status, out)."""
        out = np.zeros(kernels.OUT_SIZE) if out is None else out
        return self._call(self._arguments(X, targets, order, batch_size, first, last, out)), out

    def stepper(self, X, targets):
        """A function running one update on the whole batch (X, targets), in this order, and
        returning (status, out) as :meth:`run` does; its arguments are laid out once, here.

        For :meth:`fastrnn.Model.training_step`, which times one update: at the binary-addition
        size, laying them out at every call (an order, a fresh ``out``, the argument tuples)
        cost a tenth of the update.
        """
        out = np.zeros(kernels.OUT_SIZE)
        arguments = self._arguments(X, targets, np.arange(len(X)), len(X), 0, 1, out)
        # After the first call, the compiled code the dispatcher ran for these very arguments,
        # called directly: its typing of the nested argument tuples cost 0.7 µs of a 10 µs update.
        compiled = []

        def step():
            out.fill(0.0)
            if compiled:
                return self._call(arguments, compiled[0]), out
            status = self._call(arguments)
            compiled.append(entry_point(self.train, arguments) or self.train)
            return status, out

        return step

    def _arguments(self, X, targets, order, batch_size, first, last, out):
        """The compiled loop's arguments (see :mod:`fastrnn.kernels.training`)."""
        return ((X, *targets, order), (self.flat.buffer, self.grads, self.slots, self.flat.layout, self.module,
                                       self.module_grads, self.module_slots),
                (batch_size, first, last, self.segments, self.config, self.hyper, self.module_hyper), out)

    def _call(self, arguments, train=None):
        """Run the compiled loop (or ``train``, its code for exactly these arguments' types) on
        ``arguments`` (from :meth:`_arguments`), counting its updates into the optimizers' steps;
        returns its status."""
        out = arguments[-1]
        updates, module_updates = out[kernels.O_UPDATES], out[kernels.O_SG_UPDATES]
        self.config[kernels.C_STEPS] = self.optimizer.steps
        if self.synthetic is not None:
            self.config[kernels.C_SG_STEPS] = self.synthetic.optimizer.steps
        if train is not None:
            status = train(*arguments)
        elif self.fresh:
            self.fresh = False
            status = first_call(self.train, arguments, f"{type(self.model.core).__name__} {self.model.dtype.name} "
                                                       f"training loop")
        else:
            status = self.train(*arguments)
        self.optimizer.steps += int(out[kernels.O_UPDATES] - updates)
        if self.synthetic is not None:
            self.synthetic.optimizer.steps += int(out[kernels.O_SG_UPDATES] - module_updates)
        return status

    def epoch(self, X, targets, order, batch_size, on_block=None):
        """Every batch of one epoch, in blocks of about :data:`BLOCK_SECONDS`.

        Returns the running sums (``out`` of :mod:`fastrnn.kernels.training`: the loss,
        positions, correct, judged, ..., the synthetic-gradient loss) and, on a stop, (status,
        batch, mean loss) where it happened; ``on_block(batches, loss sum, positions)`` is called after each block.
        """
        n = -(-len(X) // batch_size)
        order = batch_order(order, batch_size)
        out = np.zeros(kernels.OUT_SIZE)
        first = 0
        while first < n:
            last = min(n, first + self.batches_per_call)
            began = time.perf_counter()
            status, _ = self.run(X, targets, order, batch_size, first, last, out)
            if status != kernels.OK:
                return out, (status, int(out[kernels.O_BATCH]), out[kernels.O_VALUE])
            spent = time.perf_counter() - began
            # The next block sized from this one's rate, growing at most 8x at a time.
            per_batch = spent / (last - first)
            self.batches_per_call = max(1, min(8 * (last - first), int(BLOCK_SECONDS / max(per_batch, 1e-9))))
            if on_block is not None:
                on_block(last - first, out[kernels.O_LOSS], out[kernels.O_POSITIONS])
            first = last
        return out, None
