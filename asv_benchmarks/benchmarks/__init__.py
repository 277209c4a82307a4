"""fastrnn's asv benchmarks.

Numba's threads are pinned to one in every benchmark process (the kernels' default is every core),
except where a benchmark measures the scaling over threads (``TrackThreadScaling``), which sets
its own counts. BLAS is pinned to one thread in every benchmark process, as in ``fastrnn bench`` and the speed
targets. The kernels multiply with their own single-threaded product; the references go through
NumPy's BLAS, which would otherwise use every core, and the ratios would not be comparable with
the targets (when the kernels still used OpenBLAS, one unpinned run read the stack at 3.5x where
one thread gave 2.4-2.9x).
"""

import numba

from fastrnn.system import blas_threads

numba.set_num_threads(1)

# Applied when threadpoolctl (the ``bench`` extra) is installed, for the life of the process.
_BLAS_LIMITS, BLAS_THREADS = blas_threads(1)
