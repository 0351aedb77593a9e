"""A padding mask, a causal mask, and the two combined, as keep-matrices (docs/masking.md)."""

import numpy as np
import matplotlib.pyplot as plt

L = S = 6
length = 4  # this sequence's real length; keys 4 and 5 are padding
padding = np.broadcast_to(np.arange(S)[None, :] < length, (L, S))
causal = np.arange(S)[None, :] <= np.arange(L)[:, None]
panels = [("padding, length 4", padding), ("causal", causal), ("padding and causal", padding & causal)]
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.6))
for ax, (title, keep) in zip(axes, panels):
    ax.imshow(keep, cmap="Greens", vmin=0, vmax=1.3)
    ax.set_title(title, fontsize=8)
    ax.set_xticks(range(S))
    ax.set_yticks(range(L))
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
fig.tight_layout()
