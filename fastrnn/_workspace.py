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
