"""
Binary addition, as the classic NumPy program trains it
=======================================================

A sigmoid RNN with 16 hidden units learns to add 8-bit numbers fed least-significant bit first
(Trask's "RNN from scratch"). The classic program updates after every pair with plain SGD at
learning rate 0.1 on the loss *summed* over the 8 positions; ``reduction="sum"`` makes the same
learning rate carry over. ``fastrnn train binary-addition`` trains the Adam variant.
"""

import matplotlib.pyplot as plt

import fastrnn
from fastrnn import datasets

(X, Y), test = datasets.binary_addition(2000, 500, seed=0)
model = fastrnn.Model(fastrnn.RNN(2, 16, "sigmoid", seed=0), 1, loss="sigmoid_cross_entropy",
                      reduction="sum", seed=0)
history = model.fit(X, Y, epochs=5, batch_size=1, optimizer=fastrnn.SGD(0.1), validation=test,
                    progress=False)
print(f"held-out bit accuracy: {model.evaluate(*test)['accuracy']:.3f}")

# %%
# The loss is reported per position, the accuracy per bit.
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
epochs = range(1, len(history["loss"]) + 1)
left.plot(epochs, history["loss"], label="training")
left.plot(epochs, history["val_loss"], label="held out")
left.set(xlabel="epoch", ylabel="loss per bit", yscale="log")
left.legend()
right.plot(epochs, history["accuracy"], label="training")
right.plot(epochs, history["val_accuracy"], label="held out")
right.set(xlabel="epoch", ylabel="bit accuracy")
fig.tight_layout()
