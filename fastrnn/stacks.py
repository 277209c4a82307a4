"""Stacks of recurrent layers: :class:`DilatedRNN` (Chang et al. 2017) and :class:`Bidirectional`.

A dilated layer with dilation d runs its cell over d independent chains, the steps t with the
same t mod d. The fast path (``backend="numba"``) interleaves them: T = q*d + r steps are split
into the r chains of q+1 steps and the d-r chains of q steps, and each group is one call of the
cell's kernels over a batch d (or d-r) times larger. The NumPy backend runs
:mod:`fastrnn.reference.dilated` instead, the direct recurrence over h_{t-d}, step by step.
"""

import numpy as np

from . import _validation as v
from ._params import PrefixedParams
from .cells import Cell, Tape
from .layer import DescriptionError, Layer, described_shapes, is_size, kind_of, tree_map
from .reference import dilated as reference

# -- nested states ----------------------------------------------------------------------------
# A layer's state is an array, or a tuple of states: LSTM's (h, c), a bidirectional layer's
# (forward, backward). The layer's zero_state is the template: its nesting and leaf shapes.

def check_state(name, value, template, dtype, hint):
    """Validate a nested state against ``template`` (a zero state: each leaf the expected shape).
    None means the template itself."""
    if value is None:
        return template
    if isinstance(template, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(template):
            got = f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) \
                else type(value).__name__
            raise TypeError(f"{name}: expected a tuple of {len(template)} states ({hint}), got {got}")
        return tuple(check_state(f"{name}[{i}]", part, sub, dtype, hint)
                     for i, (part, sub) in enumerate(zip(value, template)))
    return v.as_float_array(name, value, dtype, template.shape, hint)


# -- public layers ----------------------------------------------------------------------------

class StackTape(Tape):
    """What :meth:`DilatedRNN.backward` or :meth:`Bidirectional.backward` needs. Opaque."""

    __slots__ = ()


def _check_tape(owner, tape):
    if not isinstance(tape, StackTape):
        raise TypeError(f"tape: expected the tape returned by forward, got {type(tape).__name__}")
    if tape.owner is not owner:
        raise ValueError(f"tape: it was made by another layer ({tape.owner!r}); backward needs a tape "
                         f"from this object's own forward")


class Bidirectional(Layer):
    r"""Two cells over one sequence, the second reading it backwards; outputs concatenated.

    .. math::
        y^f &= \mathrm{fwd}(x_0, \dots, x_{T-1}), \quad
        y^b_t = \mathrm{bwd}(x_{T-1}, \dots, x_0)_{T-1-t} \\
        y_t &= [y^f_t ; y^b_t] \quad (\text{forward features first})

    Usable alone, with the interface of a cell, or as a layer of :class:`DilatedRNN`, where each
    direction gets the layer's dilation (the backward one over the reversed sequence).

    Parameters
    ----------
    forward_cell, backward_cell : Cell
        Two distinct cells with the same ``input_size``, dtype and backend; their hidden sizes
        and kinds may differ.

    Attributes
    ----------
    params : mapping
        Live view of both cells' parameters: ``"forward.<name>"`` and ``"backward.<name>"``.
    output_size : int
        ``forward_cell.output_size + backward_cell.output_size``.

    Notes
    -----
    The state is the pair ``(forward_state, backward_state)``, each shaped as its cell's state;
    the backward direction's final state is the one it reaches at step 0.
    """

    def __init__(self, forward_cell, backward_cell):
        for name, cell in (("forward_cell", forward_cell), ("backward_cell", backward_cell)):
            if not isinstance(cell, Cell):
                raise TypeError(f"{name}: expected a fastrnn cell (RNN, GRU, LSTM, UGRNN, IntersectionRNN), "
                                f"got {type(cell).__name__}")
        if forward_cell is backward_cell:
            raise ValueError("backward_cell: expected a second cell, got forward_cell itself")
        for attribute in ("input_size", "dtype", "backend"):
            a, b = getattr(forward_cell, attribute), getattr(backward_cell, attribute)
            if a != b:
                raise ValueError(f"backward_cell: expected {attribute} {a} like forward_cell, got {b}")
        self.forward_cell = forward_cell
        self.backward_cell = backward_cell
        self.params = PrefixedParams({"forward": forward_cell, "backward": backward_cell})

    input_size = property(lambda self: self.forward_cell.input_size)
    dtype = property(lambda self: self.forward_cell.dtype)
    backend = property(lambda self: self.forward_cell.backend)
    output_size = property(lambda self: self.forward_cell.output_size + self.backward_cell.output_size)

    # -- the layer interface (fastrnn.layer) ---------------------------------------------------

    def zero_state(self, batch):
        return (self.forward_cell.zero_state(batch), self.backward_cell.zero_state(batch))

    def describe(self):
        return {"kind": "Bidirectional", "forward": self.forward_cell.describe(),
                "backward": self.backward_cell.describe()}

    @classmethod
    def from_description(cls, description, dtype, backend):
        return cls(*(kind_of(description[side], side, Cell).from_description(description[side], dtype, backend)
                     for side in ("forward", "backward")))

    @classmethod
    def described_shapes(cls, description, where, prefix):
        if set(description) != {"kind", "forward", "backward"}:
            raise DescriptionError(f"{where}: a Bidirectional layer needs a forward and a backward cell")
        (forward, h_f), (backward, h_b) = (described_shapes(description[side], f"{where}.{side}", f"{prefix}{side}.",
                                                            Cell) for side in ("forward", "backward"))
        return {**forward, **backward}, h_f + h_b

    def flop_count(self, T, B):
        return self.forward_cell.flop_count(T, B) + self.backward_cell.flop_count(T, B)

    def dilated_forward(self, d, x, state):
        """Both directions as layers of dilation ``d`` of a stack (``state`` leaves (d, B, F))."""
        return self.run_forward(x, state, lambda cell, xs, s: cell.dilated_forward(d, xs, s))

    def dilated_backward(self, d, tapes, dy, dstate, truncate):
        """Backward of :meth:`dilated_forward`."""
        return self.run_backward(tapes, dy, dstate, truncate,
                                 lambda cell, t, g, s, k: cell.dilated_backward(d, t, g, s, k))

    def run_forward(self, x, state, run):
        """Both directions through ``run(cell, x, state) -> (y, state, tape)`` (plain or dilated)."""
        y_f, s_f, t_f = run(self.forward_cell, x, state[0])
        y_b, s_b, t_b = run(self.backward_cell, np.ascontiguousarray(x[::-1]), state[1])
        y = np.concatenate([y_f, y_b[::-1]], axis=2)
        return y, (s_f, s_b), (t_f, t_b)

    def run_backward(self, tapes, dy, dstate, truncate, run):
        """Backward of :meth:`run_forward` through ``run(cell, tape, dy, dstate, truncate)``."""
        split = self.forward_cell.output_size
        g_f, dx_f, d_f = run(self.forward_cell, tapes[0], dy[:, :, :split], dstate[0], truncate)
        g_b, dx_b, d_b = run(self.backward_cell, tapes[1], np.ascontiguousarray(dy[::-1, :, split:]), dstate[1],
                             truncate)
        grads = {**{f"forward.{k}": g for k, g in g_f.items()}, **{f"backward.{k}": g for k, g in g_b.items()}}
        return grads, dx_f + dx_b[::-1], (d_f, d_b)

    def forward(self, x, state=None):
        """Run both directions.

        Parameters
        ----------
        x : array_like, shape (T, B, input_size)
        state : tuple, optional
            ``(forward_state, backward_state)``, each as its cell's state; zeros if omitted.

        Returns
        -------
        y : ndarray, shape (T, B, output_size)
        state : tuple
            Final states of both directions.
        tape : StackTape
        """
        x = v.as_float_array("x", x, self.dtype, (None, None, self.input_size), "T, B, input_size")
        B = x.shape[1]
        state = check_state("state", state, self.zero_state(B), self.dtype, "batch, hidden_size")
        y, final, tapes = self.run_forward(x, state, lambda cell, xs, s: cell.forward(xs, s))
        return y, final, StackTape(self, x, tapes)

    def backward(self, tape, dy, dstate=None, truncate=None):
        """Backpropagate both directions; ``truncate`` applies within each (see :meth:`Cell.backward`).

        Returns
        -------
        grads : dict
            Keys of :attr:`params`.
        dx : ndarray, shape (T, B, input_size)
        dstate : tuple
            Gradient at both directions' initial states.
        """
        _check_tape(self, tape)
        T, B = tape.shape
        v.check_truncate(truncate)
        dy = v.as_float_array("dy", dy, self.dtype, (T, B, self.output_size), "T, B, output_size of the tape")
        dstate = check_state("dstate", dstate, self.zero_state(B), self.dtype, "batch, hidden_size")
        return self.run_backward(tape.arrays, dy, dstate, truncate,
                                 lambda cell, t, g, s, k: cell.backward(t, g, s, truncate=k))

    def __repr__(self):
        return f"Bidirectional({self.forward_cell!r}, {self.backward_cell!r})"


class DilatedRNN(Layer):
    r"""A stack of recurrent layers, layer l recurring over :math:`h_{t-d_l}` (Chang et al. 2017).

    .. math::
        h^{(l)}_t = \mathrm{cell}_l\big(y^{(l-1)}_t,\ h^{(l)}_{t-d_l}\big), \quad y^{(0)} = x

    and the stack's output is the top layer's per-step output. All ``dilations`` equal to 1 make a
    plain deep stack.

    Parameters
    ----------
    cells : sequence of Cell or Bidirectional
        Distinct layers; layer l's ``input_size`` must equal layer l-1's ``output_size``. Kinds
        and sizes may be mixed; dtype and backend must agree. ``backend="numpy"`` cells make the
        stack run :mod:`fastrnn.reference.dilated`, the direct step-by-step recurrence.
    dilations : sequence of int
        One positive int per layer.

    Attributes
    ----------
    params : mapping
        Live view of every layer's parameters, keyed ``"{layer}.{name}"`` (``"0.weight_ih"``,
        ``"1.forward.bias_hh"`` for a bidirectional layer).

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> stack = fastrnn.DilatedRNN([fastrnn.GRU(2, 8, seed=0), fastrnn.LSTM(8, 8, seed=1)], dilations=[1, 4])
    >>> x = np.random.default_rng(0).standard_normal((10, 3, 2))
    >>> y, states, tape = stack.forward(x)
    >>> y.shape, states[0].shape, [s.shape for s in states[1]]   # layer 1 keeps its last 4 (h, c)
    ((10, 3, 8), (1, 3, 8), [(4, 3, 8), (4, 3, 8)])
    >>> grads, dx, dstates = stack.backward(tape, np.ones_like(y), truncate=2)
    >>> grads["1.weight_hh"].shape
    (32, 8)

    Notes
    -----
    The state is a list with one entry per layer. For dilation d the entry is an array S of
    shape (d, B, H) (for LSTM a pair of them, for a bidirectional layer a pair of directions)
    holding that layer's last d states, oldest first: going in, step t < d reads S[t] as its
    h_{t-d}; coming out, S'[i] = h_{T-d+i}, which for T < d still holds entries of the incoming
    S. So a sequence processed in chunks, carrying the state, gives exactly one call's outputs.
    ``dstate`` has the same structure.

    ``truncate=k`` applies per layer, counts that layer's own (dilated) transitions and acts on
    the gradient arriving at each of its outputs (from the layer above, or ``dy`` at the top);
    the gradient at a final-state entry S'[i] counts as one more output of step T-d+i.
    """

    def __init__(self, cells, dilations):
        if isinstance(cells, (Cell, Bidirectional)) or not isinstance(cells, (list, tuple)) or not cells:
            raise TypeError(f"cells: expected a non-empty list of cells, got {type(cells).__name__}")
        if not isinstance(dilations, (list, tuple)) or len(dilations) != len(cells):
            got = f"{len(dilations)} dilations" if isinstance(dilations, (list, tuple)) else type(dilations).__name__
            raise ValueError(f"dilations: expected a list of {len(cells)} positive ints (one per cell), got {got}")
        self.dilations = tuple(v.check_positive_int(f"dilations[{i}]", d) for i, d in enumerate(dilations))
        for i, cell in enumerate(cells):
            if not isinstance(cell, (Cell, Bidirectional)):
                raise TypeError(f"cells[{i}]: expected a fastrnn cell or Bidirectional, got {type(cell).__name__}")
            if any(cell is other for other in cells[:i]):
                raise ValueError(f"cells[{i}]: the same cell object appears twice; each layer needs its own")
            if i and cell.input_size != cells[i - 1].output_size:
                raise ValueError(f"cells[{i}]: expected input_size {cells[i - 1].output_size} "
                                 f"(the output_size of cells[{i - 1}]), got {cell.input_size}")
            for attribute in ("dtype", "backend"):
                if getattr(cell, attribute) != getattr(cells[0], attribute):
                    raise ValueError(f"cells[{i}]: expected {attribute} {getattr(cells[0], attribute)} like "
                                     f"cells[0], got {getattr(cell, attribute)}")
        self.cells = tuple(cells)
        self.params = PrefixedParams({str(i): cell for i, cell in enumerate(self.cells)})

    input_size = property(lambda self: self.cells[0].input_size)
    output_size = property(lambda self: self.cells[-1].output_size)
    dtype = property(lambda self: self.cells[0].dtype)
    backend = property(lambda self: self.cells[0].backend)

    # -- the layer interface (fastrnn.layer) ---------------------------------------------------

    def zero_state(self, batch):
        """One entry per layer: that layer's zero state with each leaf (d, batch, features)."""
        return [tree_map(lambda leaf, d=d: leaf.reshape(d, batch, -1), cell.zero_state(d * batch))
                for cell, d in zip(self.cells, self.dilations)]

    def describe(self):
        return {"kind": "DilatedRNN", "cells": [cell.describe() for cell in self.cells],
                "dilations": list(self.dilations)}

    @classmethod
    def from_description(cls, description, dtype, backend):
        layers = [kind_of(layer, f"cells[{i}]", (Cell, Bidirectional)).from_description(layer, dtype, backend)
                  for i, layer in enumerate(description["cells"])]
        return cls(layers, description["dilations"])

    @classmethod
    def described_shapes(cls, description, where, prefix):
        cells, dilations = description.get("cells"), description.get("dilations")
        if set(description) != {"kind", "cells", "dilations"} or not isinstance(cells, list) or not cells \
                or not isinstance(dilations, list) or len(dilations) != len(cells) \
                or not all(is_size(d) for d in dilations):
            raise DescriptionError(f"{where}: a DilatedRNN needs a list of cells and as many positive dilations")
        shapes, H = {}, None
        for i, cell in enumerate(cells):
            layer, H = described_shapes(cell, f"{where}.cells[{i}]", f"{prefix}{i}.", (Cell, Bidirectional))
            shapes.update(layer)
        return shapes, H

    def flop_count(self, T, B):
        return sum(cell.flop_count(T, B) for cell in self.cells)

    def _states(self, name, states, B):
        if states is None:
            states = [None] * len(self.cells)
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            got = f"{len(states)} entries" if isinstance(states, (list, tuple)) else type(states).__name__
            raise TypeError(f"{name}: expected a list of {len(self.cells)} layer states, got {got}")
        return [check_state(f"{name}[{i}]", s, template, self.dtype, f"dilation {d}, batch, hidden_size")
                for i, (s, template, d) in enumerate(zip(states, self.zero_state(B), self.dilations))]

    def forward(self, x, state=None):
        """Run the stack over a sequence.

        Parameters
        ----------
        x : array_like, shape (T, B, input_size)
        state : list, optional
            One entry per layer, as described in the class notes; zeros if omitted.

        Returns
        -------
        y : ndarray, shape (T, B, output_size)
            The top layer's per-step output.
        state : list
            Each layer's last d states, to carry into the next chunk.
        tape : StackTape
        """
        x = v.as_float_array("x", x, self.dtype, (None, None, self.input_size), "T, B, input_size")
        states = self._states("state", state, x.shape[1])
        if self.backend == "numpy":
            y, finals, tapes = reference.forward(self.cells, self.dilations, x, states)
        else:
            finals, tapes, y = [], [], x
            for cell, d, s in zip(self.cells, self.dilations, states):
                y, s, t = cell.dilated_forward(d, y, s)
                finals.append(s)
                tapes.append(t)
        return y, finals, StackTape(self, x, tuple(tapes))

    def backward(self, tape, dy, dstate=None, truncate=None):
        """Backpropagate through every layer, top to bottom.

        Parameters
        ----------
        tape : StackTape
            From this stack's :meth:`forward`.
        dy : array_like, shape (T, B, output_size)
        dstate : list, optional
            Gradient at the final state, structured like the state.
        truncate : int or None
            Per-layer horizon in that layer's own transitions (see the class notes).

        Returns
        -------
        grads : dict
            Keys of :attr:`params`.
        dx : ndarray, shape (T, B, input_size)
        dstate : list
            Gradient at the initial state, structured like the state.
        """
        _check_tape(self, tape)
        T, B = tape.shape
        k = v.check_truncate(truncate)
        k = None if k < 0 else k
        dy = v.as_float_array("dy", dy, self.dtype, (T, B, self.output_size), "T, B, output_size of the tape")
        dstates = self._states("dstate", dstate, B)
        if self.backend == "numpy":
            layer_grads, dx, dstarts = reference.backward(self.cells, self.dilations, tape.arrays, dy, dstates, k)
        else:
            layer_grads, dstarts, dx = [None] * len(self.cells), [None] * len(self.cells), dy
            for i in reversed(range(len(self.cells))):
                cell, d, t, s = self.cells[i], self.dilations[i], tape.arrays[i], dstates[i]
                layer_grads[i], dx, dstarts[i] = cell.dilated_backward(d, t, dx, s, k)
        grads = {f"{i}.{name}": g for i, lg in enumerate(layer_grads) for name, g in lg.items()}
        return grads, dx, list(dstarts)

    def __repr__(self):
        layers = ", ".join(repr(c) for c in self.cells)
        return f"DilatedRNN([{layers}], dilations={list(self.dilations)})"
