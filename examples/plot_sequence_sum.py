"""
Running sum with a stack of Intersection RNNs
=============================================

Two +RNN layers (Collins et al. 2016) regress the running sum of a random sequence at every
step, trained with Adam on the mean squared error.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastrnn
from fastrnn import datasets

X, Y = datasets.sequence_sum(800, 12, seed=0)
Xt, Yt = datasets.sequence_sum(200, 12, seed=1)
core = fastrnn.DilatedRNN([fastrnn.IntersectionRNN(1, 32, seed=0), fastrnn.IntersectionRNN(32, 32, seed=1)], [1, 1])
model = fastrnn.Model(core, 1, loss="mse", seed=0)
history = model.fit(X, Y, epochs=15, batch_size=32, optimizer=fastrnn.Adam(0.005), validation=(Xt, Yt),
                    progress=False)
residual = ((model.predict(Xt) - Yt) ** 2).sum()
print(f"test R^2: {1 - residual / ((Yt - Yt.mean()) ** 2).sum():.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
left.plot(history["loss"], label="training")
left.plot(history["val_loss"], label="test")
left.set(xlabel="epoch", ylabel="mean squared error", yscale="log")
left.legend()
right.plot(np.cumsum(Xt[0, :, 0]), "k-", label="running sum")
right.plot(model.predict(Xt[:1])[0, :, 0], "o", label="prediction")
right.set(xlabel="step", title="one test sequence")
right.legend()
fig.tight_layout()
