"""fastrnn's asv benchmarks.

BLAS is pinned to one thread in every benchmark process, as in ``fastrnn bench`` and the speed
targets. The kernels multiply with their own single-threaded product; the references go through
NumPy's BLAS, which would otherwise use every core, and the ratios would not be comparable with
the targets (when the kernels still used OpenBLAS, one unpinned run read the stack at 3.5x where
one thread gave 2.4-2.9x).
"""

from fastrnn.system import blas_threads

# Applied when threadpoolctl (the ``bench`` extra) is installed, for the life of the process.
_BLAS_LIMITS, BLAS_THREADS = blas_threads(1)
