"""Large arrays handed out again once nothing refers to them any more.

A fresh NumPy array of many megabytes comes from the operating system as untouched pages, and the
first write to each page faults: at T=784, B=128, H=20 (pixel-MNIST) a GRU's forward spent a third
of its time there (45 ms with fresh output and tape arrays, 28 ms writing into used ones). A layer
called again and again at one shape can instead write into the arrays of its previous call, once
the caller has let go of them: its tape dropped after the backward, its output consumed.

Whether anything still refers to an array is CPython's reference count: an array held only by the
workspace itself is free. A tape kept alive, an output the caller still holds, a view of either
(a view holds its base): each is a reference, and such an array is never handed out again.
"""

import math
import sys

import numpy as np

#: Arrays smaller than this come from the allocator's own free lists, already touched; reusing
#: them would save nothing and cost a lookup per call.
LARGE = 1 << 20  # bytes

#: Arrays a workspace keeps at most (the oldest is dropped first): a caller alternating between a
#: few shapes (a dilated layer's two chain groups, a last partial batch) keeps all of them.
SLOTS = 8

# References to a free array seen by sys.getrefcount inside Workspace.empty: the workspace's
# dict, the local variable, and getrefcount's own argument.
_FREE = 3


#: Sets of outputs up to this many bytes in all are recycled by :class:`Outputs`: where a call's
#: own cost is a few microseconds, making its arrays is a sizeable part of it.
TINY = 1 << 16  # bytes


class Outputs:
    """The arrays one kind of call writes, of fixed shapes, in the order the kernel takes them.

    :meth:`take` returns new ones, except for a tiny set (at most :data:`TINY` bytes): there two
    sets are kept and used in turn, and one is handed out again once nothing refers to any of its
    arrays. A new array costs about 0.2 µs to make and free, so a backward at T=8, B=1, H=16, which
    writes six, saved a microsecond of its 8. Two sets, because a caller typically still holds the
    results of the previous call while making the next (``y, h, tape = cell.forward(x, h)``).
    """

    __slots__ = ("shapes", "_dtypes", "_sets", "_turn", "_free")

    def __init__(self, shapes, dtype):
        self.shapes, self._dtypes = tuple(shapes), (dtype,) * len(shapes)
        tiny = sum(math.prod(shape) for shape in shapes) * dtype.itemsize <= TINY
        self._sets = [None, None] if tiny else None
        self._turn = 0
        # The reference counts of a free set's arrays as take() sees them: the set's own list
        # and sys.getrefcount's argument.
        self._free = [2] * len(shapes)

    def take(self):
        """A list of the arrays (uninitialised, or holding an earlier call's results nobody keeps)."""
        sets = self._sets
        if sets is None:
            return self.fresh()
        turn = self._turn = 1 - self._turn
        arrays = sets[turn]
        if arrays is None or list(map(sys.getrefcount, arrays)) != self._free:
            arrays = sets[turn] = self.fresh()
        # The caller's own list: while it lives its arrays count as in use, so a call running
        # in another thread (the kernels release the GIL) cannot be handed the same set.
        return list(arrays)

    def fresh(self):
        """A list of new arrays (a C-level map: a list comprehension is a function call of its own)."""
        return list(map(np.empty, self.shapes, self._dtypes))


class Workspace:
    """Uninitialised arrays, reused across calls for the large ones (see the module notes)."""

    __slots__ = ("_arrays",)

    def __init__(self):
        self._arrays = {}

    def empty(self, name, shape, dtype):
        """An uninitialised array of ``shape`` and ``dtype``; ``name`` tells apart the arrays of
        one call (each must be a different one)."""
        key = (name, shape, dtype)
        array = self._arrays.get(key)
        if array is not None and sys.getrefcount(array) == _FREE:
            return array
        array = np.empty(shape, dtype)
        if array.nbytes >= LARGE:
            self._arrays.pop(key, None)
            if len(self._arrays) >= SLOTS:
                del self._arrays[next(iter(self._arrays))]
            self._arrays[key] = array
        return array

    def clear(self):
        """Let go of every kept array."""
        self._arrays.clear()
