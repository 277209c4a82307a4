"""
Next-word prediction with a truncated horizon
=============================================

A tanh RNN predicts the next word of the standard library's help text, each output's gradient
flowing back through at most 4 steps (``truncate=4``, the classic tutorial's ``bptt_truncate``).
It beats the unigram model, which knows word frequencies but no context.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import fastrnn
from fastrnn import datasets

(X, Y), (Xt, Yt), vocabulary = datasets.next_word(datasets.builtin_text(), vocab_size=200, seq_len=16,
                                                  max_sequences=600, seed=0)
model = fastrnn.Model(fastrnn.RNN(200, 64, seed=0), 200, seed=0)
history = model.fit(X, Y, epochs=8, batch_size=32, optimizer=fastrnn.Adam(0.005), truncate=4,
                    validation=(Xt, Yt), progress=False)
counts = np.bincount(Y.ravel(), minlength=200) + 1.0
unigram = float(np.exp(-np.mean(np.log((counts / counts.sum())[Yt.ravel()]))))
print(f"test perplexity {math.exp(history['val_loss'][-1]):.1f} against the unigram model's {unigram:.1f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.exp(history["loss"]), label="training")
ax.plot(np.exp(history["val_loss"]), label="test")
ax.axhline(unigram, color="gray", linestyle="--", label="unigram model")
ax.set(xlabel="epoch", ylabel="perplexity")
ax.legend()
fig.tight_layout()
