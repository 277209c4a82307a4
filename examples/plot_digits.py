"""
Digits with a Dilated RNN
=========================

A two-layer Dilated GRU (dilations 1 and 2, Chang et al. 2017) reads scikit-learn's 8x8 digits
row by row and classifies them from its last step.
"""

import matplotlib.pyplot as plt

import fastrnn
from fastrnn import datasets

(X, y), (Xt, yt) = datasets.digits(seed=0)
core = fastrnn.DilatedRNN([fastrnn.GRU(8, 32, seed=0), fastrnn.GRU(32, 32, seed=1)], [1, 2])
model = fastrnn.Model(core, 10, readout="last", seed=0)
history = model.fit(X, y, epochs=15, batch_size=32, optimizer=fastrnn.Adam(0.01), validation=(Xt, yt),
                    progress=False)
print(f"test accuracy: {history['val_accuracy'][-1]:.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
left.plot(history["loss"], label="training")
left.plot(history["val_loss"], label="test")
left.set(xlabel="epoch", ylabel="cross-entropy", yscale="log")
left.legend()
right.plot(history["accuracy"], label="training")
right.plot(history["val_accuracy"], label="test")
right.set(xlabel="epoch", ylabel="accuracy")
right.legend()
fig.tight_layout()
