"""fastrnn's asv benchmarks.

BLAS is pinned to one thread in every benchmark process, as in ``fastrnn bench`` and the speed
targets: ratios measured with the libraries' default thread counts are not comparable with
them (in one such run the stack read 3.5x, where one thread gives it 2.4-2.9x).
"""

from fastrnn.cli import _blas_threads

# Applied when threadpoolctl (the ``bench`` extra) is installed, for the life of the process.
_BLAS_LIMITS, BLAS_THREADS = _blas_threads(1)
