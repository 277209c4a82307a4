"""Writes the model files and the checkpoint under tests/data/ (run once, by the version whose files
later versions must keep reading; the files here were written by commit 20c7d77):

    PYTHONPATH=<checkout of that commit> python tests/data/write_files.py tests/data

Besides the files it records what that version computed with them (predictions, the
uninterrupted history), which tests/test_files_of_earlier_versions.py compares against.
"""

import json
import sys
from pathlib import Path

import numpy as np

import fastrnn

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.standard_normal((12, 5, 2))
Y = rng.integers(0, 3, (12, 5))
expected = {"X": X, "Y": Y}

# A plain cell model, trained a little.
model = fastrnn.Model(fastrnn.RNN(2, 4, "sigmoid", seed=0), 3, seed=0)
model.fit(X, Y, epochs=2, batch_size=4, optimizer=fastrnn.Adam(0.05), progress=False)
model.save(out / "rnn_model.npz")
expected["rnn_predict"] = model.predict(X)

# A mixed DilatedRNN with a Bidirectional layer.
core = fastrnn.DilatedRNN([fastrnn.Bidirectional(fastrnn.LSTM(2, 3, seed=1), fastrnn.GRU(2, 2, seed=2)),
                           fastrnn.IntersectionRNN(5, 4, seed=3), fastrnn.UGRNN(4, 3, seed=4)], [1, 2, 3])
model = fastrnn.Model(core, 3, seed=5)
model.fit(X, Y, epochs=1, batch_size=6, optimizer=fastrnn.Adam(0.05), progress=False)
model.save(out / "mixed_model.npz")
expected["mixed_predict"] = model.predict(X)

# An LSTM checkpoint with Adam state after 2 of 4 epochs, and the uninterrupted 4-epoch run.
def lstm_run(epochs, checkpoint=None):
    model = fastrnn.Model(fastrnn.LSTM(2, 3, seed=6), 3, seed=6)
    history = model.fit(X, Y, epochs=epochs, batch_size=4, optimizer=fastrnn.Adam(0.05), tbptt=2,
                        checkpoint=checkpoint, progress=False)
    return model, history

lstm_run(2, out / "lstm_checkpoint.npz")
model, history = lstm_run(4)
expected["lstm_params"] = np.array(json.dumps({k: v.tolist() for k, v in model.params.items()}))
expected["lstm_history"] = np.array(json.dumps(dict(history)))
np.savez(out / "expected.npz", **expected)
print("written by fastrnn", fastrnn.__version__, "to", out)
