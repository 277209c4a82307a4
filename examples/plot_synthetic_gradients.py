"""
Synthetic gradients against plain truncated BPTT
================================================

A vanilla RNN reads the digits 0 and 1 row by row (8 steps) with its label at the last step,
trained in segments of K = 2 steps. Plain TBPTT(2) updates each segment with the gradient of
what it sees; with synthetic gradients (Jaderberg et al. 2016) each segment's backward also
receives a learnt prediction of the gradient from the rest of the sequence.
``fastrnn train recall-sg --compare 5`` compares the two over several seeds.
"""

import matplotlib.pyplot as plt

import fastrnn
from fastrnn import datasets

(X, y), (Xt, yt) = datasets.digits(seed=0)
train, test = (X[y < 2], y[y < 2]), (Xt[yt < 2], yt[yt < 2])
histories = {}
for label, synthetic in (("TBPTT(2)", None), ("synthetic gradients", fastrnn.SyntheticGradients())):
    model = fastrnn.Model(fastrnn.RNN(8, 32, seed=0), 2, readout="last", seed=0)
    histories[label] = model.fit(*train, epochs=10, batch_size=16, optimizer=fastrnn.Adam(0.01), tbptt=2,
                                 synthetic_gradients=synthetic, validation=test, progress=False)
    print(f"{label}: test accuracy {histories[label]['val_accuracy'][-1]:.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
for label, history in histories.items():
    left.plot(history["loss"], label=label)
    right.plot(history["val_accuracy"], label=label)
left.set(xlabel="epoch", ylabel="training loss", yscale="log")
right.set(xlabel="epoch", ylabel="test accuracy")
right.legend()
fig.tight_layout()
