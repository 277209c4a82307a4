"""Import plus first call of a cell in a fresh interpreter: with Numba's on-disk cache warm, and
cold (an empty cache, so every kernel the call needs is compiled)."""


class TimeStartup:
    params = (["warm", "cold"],)
    param_names = ["cache"]
    timeout = 600
    number = 1
    repeat = 1

    def timeraw_import_and_first_call(self, cache):
        cold = (
            "import os, tempfile\n"
            "os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(prefix='fastrnn-cold-')\n"
        )
        call = (
            "import numpy as np\n"
            "import fastrnn\n"
            "cell = fastrnn.GRU(2, 16, seed=0)\n"
            "y, h, tape = cell.forward(np.ones((8, 1, 2)))\n"
            "cell.backward(tape, np.ones_like(y))\n"
        )
        return (cold if cache == "cold" else "") + call
