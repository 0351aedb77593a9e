"""The weights of one row with and without a sink, by the reference's attention_weights: the sink takes its share."""

import matplotlib.pyplot as plt
import numpy as np

from kqv.reference import attention_weights

rng = np.random.default_rng(3)
S = 8
query, key = rng.standard_normal((1, 1, 4)), rng.standard_normal((1, S, 4))  # one head, one query row
sinks = (None, -1.0, 1.0, 3.0)
fig, axes = plt.subplots(1, len(sinks), figsize=(8.0, 2.4), sharey=True)
for ax, sink in zip(axes, sinks):
    extra = {} if sink is None else {"sinks": np.array([sink])}
    weights = attention_weights(query, key, **extra)[0, 0]  # (S,)
    ax.bar(range(S), weights, color="tab:blue")
    if sink is not None:
        ax.bar([S], [1 - weights.sum()], color="tab:gray")  # the sink's share, 1 - sum_j p_j
    ax.set_title("no sink" if sink is None else f"sink = {sink:g}: keys keep {weights.sum():.2f}", fontsize=8)
    ax.set_xticks(list(range(0, S, 2)) + ([S] if sink is not None else []))
    ax.set_xticklabels([str(j) for j in range(0, S, 2)] + (["sink"] if sink is not None else []), fontsize=6)
    ax.set_xlabel("key j", fontsize=7)
    ax.tick_params(labelsize=6)
axes[0].set_ylabel("weight p_j", fontsize=7)
fig.tight_layout()
