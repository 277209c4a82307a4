"""Records float64 training histories on the numba backend, one per case below, into
tests/data/histories.npz (run by the version whose numbers later versions must keep; the file
here was written by commit fd4351e, before fit's inner loop was compiled):

    PYTHONPATH=<checkout of that commit> python tests/data/write_histories.py tests/data

tests/test_training_history.py runs the same cases on the current code and compares the
histories and the final parameters (1e-10 relative).
"""

import json
import sys
from pathlib import Path

import numpy as np

import fastrnn

# (name, core factory, fit keyword arguments, model keyword arguments). Small on purpose: they
# exercise every branch of an update (each cell and option, each loss and readout, every
# optimizer, TBPTT with k1 = k2 and k1 < k2, truncation, clipping, a last partial batch).
CASES = [
    ("rnn-tanh", lambda: fastrnn.RNN(3, 5, seed=1), {}, {}),
    ("rnn-relu-sgd", lambda: fastrnn.RNN(3, 5, "relu", seed=2), {"optimizer": fastrnn.SGD(0.05, 0.9)}, {}),
    ("rnn-sigmoid-sum", lambda: fastrnn.RNN(3, 5, "sigmoid", seed=3), {"optimizer": fastrnn.SGD(0.1)},
     {"loss": "sigmoid_cross_entropy", "reduction": "sum"}),
    ("gru-tbptt", lambda: fastrnn.GRU(3, 5, seed=4), {"tbptt": 3}, {}),
    ("lstm-tbptt-k1k2", lambda: fastrnn.LSTM(3, 5, seed=5), {"tbptt": (2, 4), "clip": 0.5}, {}),
    ("lstm-rmsprop-truncate", lambda: fastrnn.LSTM(3, 5, seed=6), {"optimizer": "rmsprop", "truncate": 2}, {}),
    ("ugrnn-mse-last", lambda: fastrnn.UGRNN(3, 5, seed=7), {"tbptt": 4}, {"loss": "mse", "readout": "last"}),
    ("intersection-projected", lambda: fastrnn.IntersectionRNN(3, 5, seed=8), {"tbptt": (3, 5), "truncate": 1},
     {"loss": "sigmoid_cross_entropy"}),
    ("intersection-square-last", lambda: fastrnn.IntersectionRNN(3, 3, seed=9), {"clip": 0.1},
     {"readout": "last"}),
    ("gru-last-sgd-clip", lambda: fastrnn.GRU(3, 5, seed=10), {"optimizer": fastrnn.SGD(0.3), "tbptt": 5,
                                                               "clip": 1.0}, {"readout": "last"}),
]

N, T, I, O = 13, 9, 3, 3


def data(model_kwargs):
    """The inputs and targets of a case: float targets for the losses that take them."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, T, I))
    loss = model_kwargs.get("loss", "softmax_cross_entropy")
    last = model_kwargs.get("readout", "all") == "last"
    shape = (N,) if last else (N, T)
    if loss == "softmax_cross_entropy":
        return X, rng.integers(0, O, shape)
    values = rng.standard_normal((*shape, O))
    return X, (values > 0).astype(float) if loss == "sigmoid_cross_entropy" else values


def run(case):
    """The history and final parameters of one case."""
    _, core, fit_kwargs, model_kwargs = case
    X, Y = data(model_kwargs)
    model = fastrnn.Model(core(), O, seed=11, **model_kwargs)
    kwargs = {"optimizer": fastrnn.Adam(0.02), **fit_kwargs}
    if isinstance(kwargs["optimizer"], fastrnn.optim.Optimizer):  # a fresh one per run
        kwargs["optimizer"] = type(kwargs["optimizer"])(**kwargs["optimizer"].config())
    history = model.fit(X, Y, epochs=3, batch_size=5, validation=(X[:4], Y[:4]), progress=False, **kwargs)
    return dict(history), {name: np.array(p) for name, p in model.params.items()}


if __name__ == "__main__":
    recorded = {}
    for case in CASES:
        history, params = run(case)
        recorded[case[0]] = np.array(json.dumps({"history": history,
                                                 "params": {k: p.tolist() for k, p in params.items()}}))
    np.savez(Path(sys.argv[1]) / "histories.npz", **recorded)
    print("written by fastrnn", fastrnn.__version__, "to", sys.argv[1])
