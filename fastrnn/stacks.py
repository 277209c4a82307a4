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
from .reference import dilated as reference

# -- nested states ----------------------------------------------------------------------------
# A layer's state is an array, or a tuple of states: LSTM's (h, c), a bidirectional layer's
# (forward, backward). A template has the same nesting with the feature size at each leaf.

def state_template(layer):
    """The nesting of ``layer``'s state, with each part's feature size at the leaves."""
    if isinstance(layer, Bidirectional):
        return (state_template(layer.forward_cell), state_template(layer.backward_cell))
    sizes = tuple(layer.hidden_size for _ in layer._state_names)
    return sizes[0] if len(sizes) == 1 else sizes


def tree_map(fn, *trees):
    """Apply ``fn`` to the leaves (arrays) of equally nested tuples."""
    if isinstance(trees[0], tuple):
        return tuple(tree_map(fn, *parts) for parts in zip(*trees))
    return fn(*trees)


def check_state(name, value, template, lead, dtype, hint):
    """Validate a nested state: each leaf of shape ``(*lead, size)``. None means zeros."""
    if value is None:
        return tree_map(lambda size: np.zeros((*lead, size), dtype), template)
    if isinstance(template, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(template):
            got = f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) \
                else type(value).__name__
            raise TypeError(f"{name}: expected a tuple of {len(template)} states ({hint}), got {got}")
        return tuple(check_state(f"{name}[{i}]", part, sub, lead, dtype, hint)
                     for i, (part, sub) in enumerate(zip(value, template)))
    return v.as_float_array(name, value, dtype, (*lead, template), hint)


# -- one dilated layer over interleaved chains ----------------------------------------------

def _gather(a, d, space, name):
    """(T, B, F) -> the steps of chains 0..r-1, (q+1, r*B, F), and of chains r..d-1, (q, (d-r)*B, F).

    Row j*B + b of a group's step i is batch entry b of chain (first chain of the group + j).
    Either group may be empty (None). The second is a view of ``a``; the first, a copy unless
    d divides T, is taken from the workspace ``space`` under ``name``.
    """
    T, B, F = a.shape
    q, r = divmod(T, d)
    body = a[:q * d].reshape(q, d, B, F)
    first = None
    if r:
        first = space.empty(name, (q + 1, r, B, F), a.dtype)
        first[:q] = body[:, :r]
        first[q] = a[q * d:]
        first = first.reshape(q + 1, r * B, F)
    rest = body[:, r:].reshape(q, (d - r) * B, F) if q else None
    return first, rest


def _scatter(first, rest, T, d, B, dtype, space, name):
    """Inverse of :func:`_gather`: a view of ``rest`` when d divides T, else an array of the
    workspace ``space``."""
    F = (first if first is not None else rest).shape[2]
    if first is None:
        return rest.reshape(T, B, F)  # step i of chain j is step i*d + j: rest's own order
    out = space.empty(name, (T, B, F), dtype)
    q, r = divmod(T, d)
    body = out[:q * d].reshape(q, d, B, F)
    if r:
        steps = first.reshape(q + 1, r, B, F)
        body[:, :r] = steps[:q]
        out[q * d:] = steps[q]
    if q:
        body[:, r:] = rest.reshape(q, d - r, B, F)
    return out


def _rows(leaf, lo, hi):
    """Entries lo..hi-1 of a (d, B, F) state leaf as one ((hi-lo)*B, F) batch."""
    return leaf[lo:hi].reshape(-1, leaf.shape[2])


class _LayerTape:
    __slots__ = ("first", "rest", "T", "B")

    def __init__(self, first, rest, T, B):
        self.first, self.rest, self.T, self.B = first, rest, T, B


def dilated_forward(cell, d, x, state):
    """Run ``cell`` with dilation ``d`` over a checked ``x (T, B, I)`` from a checked ``state``
    whose leaves are (d, B, F), oldest first. Returns ``y``, the new state and a tape."""
    T, B, _ = x.shape
    q, r = divmod(T, d)
    space = cell._workspace
    x_first, x_rest = _gather(x, d, space, "dilated x")
    ys, finals, tapes = [None, None], [None, None], [None, None]
    # Chains 0..r-1 start from entries 0..r-1 of the state and end at the last r steps;
    # chains r..d-1 start from entries r..d-1 and end at steps T-d ... T-r-1 (or, with q = 0,
    # run no step at all and keep their state).
    if r:
        ys[0], finals[0], tapes[0] = cell.forward(x_first, tree_map(lambda s: _rows(s, 0, r), state))
    rest_state = tree_map(lambda s: _rows(s, r, d), state)
    if q:
        ys[1], finals[1], tapes[1] = cell.forward(x_rest, rest_state)
    else:
        finals[1] = rest_state
    y = _scatter(ys[0], ys[1], T, d, B, cell.dtype, space, "dilated y")
    # New state entry i is h_{T-d+i}: the chains r..d-1 end first, then 0..r-1.
    parts = [f for f in (finals[1], finals[0]) if f is not None]
    new_state = tree_map(lambda *fs: np.concatenate([f.reshape(-1, B, f.shape[1]) for f in fs]), *parts)
    return y, new_state, _LayerTape(tapes[0], tapes[1], T, B)


def dilated_backward(cell, d, tape, dy, dstate, truncate):
    """Backward of :func:`dilated_forward`; ``truncate`` counts the chain's own transitions."""
    T, B = tape.T, tape.B
    q, r = divmod(T, d)
    space = cell._workspace
    dy_first, dy_rest = _gather(dy, d, space, "dilated dy")
    grads, dxs, dstarts = [], [None, None], [None, None]
    if r:
        g, dxs[0], dstarts[0] = cell.backward(tape.first, dy_first, tree_map(lambda s: _rows(s, d - r, d), dstate),
                                              truncate)
        grads.append(g)
    rest_dstate = tree_map(lambda s: _rows(s, 0, d - r), dstate)
    if q:
        g, dxs[1], dstarts[1] = cell.backward(tape.rest, dy_rest, rest_dstate, truncate)
        grads.append(g)
    else:
        dstarts[1] = rest_dstate  # chains that ran no step pass their gradient straight through
    total = {name: sum(g[name] for g in grads) for name in grads[0]}
    dx = _scatter(dxs[0], dxs[1], T, d, B, cell.dtype, space, "dilated dx")
    parts = [s for s in dstarts if s is not None]
    dstart = tree_map(lambda *ss: np.concatenate([s.reshape(-1, B, s.shape[1]) for s in ss]), *parts)
    return total, dx, dstart


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


class Bidirectional:
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
        state = check_state("state", state, state_template(self), (B,), self.dtype, "batch, hidden_size")
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
        dstate = check_state("dstate", dstate, state_template(self), (B,), self.dtype, "batch, hidden_size")
        return self.run_backward(tape.arrays, dy, dstate, truncate,
                                 lambda cell, t, g, s, k: cell.backward(t, g, s, truncate=k))

    def __repr__(self):
        return f"Bidirectional({self.forward_cell!r}, {self.backward_cell!r})"


class DilatedRNN:
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

    def _states(self, name, states, B):
        if states is None:
            states = [None] * len(self.cells)
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            got = f"{len(states)} entries" if isinstance(states, (list, tuple)) else type(states).__name__
            raise TypeError(f"{name}: expected a list of {len(self.cells)} layer states, got {got}")
        return [check_state(f"{name}[{i}]", s, state_template(cell), (d, B), self.dtype,
                            f"dilation {d}, batch, hidden_size")
                for i, (s, cell, d) in enumerate(zip(states, self.cells, self.dilations))]

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
                if isinstance(cell, Bidirectional):
                    y, s, t = cell.run_forward(y, s, lambda c, xs, ss, d=d: dilated_forward(c, d, xs, ss))
                else:
                    y, s, t = dilated_forward(cell, d, y, s)
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
                if isinstance(cell, Bidirectional):
                    run = lambda c, tt, g, ss, kk, d=d: dilated_backward(c, d, tt, g, ss, kk)  # noqa: E731
                    layer_grads[i], dx, dstarts[i] = cell.run_backward(t, dx, s, k, run)
                else:
                    layer_grads[i], dx, dstarts[i] = dilated_backward(cell, d, t, dx, s, k)
        grads = {f"{i}.{name}": g for i, lg in enumerate(layer_grads) for name, g in lg.items()}
        return grads, dx, list(dstarts)

    def __repr__(self):
        layers = ", ".join(repr(c) for c in self.cells)
        return f"DilatedRNN([{layers}], dilations={list(self.dilations)})"
