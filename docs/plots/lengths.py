"""The keys each query of each batch entry keeps with key lengths, causal, in both alignments, from the reference."""

import matplotlib.pyplot as plt
import numpy as np

from kqv.reference.prepare import fold_lengths

L, S, lengths = 4, 8, np.array([8, 5, 2])
fig, axes = plt.subplots(2, len(lengths), figsize=(10.0, 4.6))
for row, alignment in enumerate(("top-left", "bottom-right")):
    kept = fold_lengths(None, (len(lengths), 1, L, S), lengths, alignment == "top-left", True, None)  # (B, 1, L, S)
    for b, ax in enumerate(axes[row]):
        ax.imshow(kept[b, 0], cmap="Blues", vmin=-0.3, vmax=1.2)
        ax.axvline(lengths[b] - 0.5, color="crimson", linewidth=1)
        ax.set_xticks(range(S))
        ax.set_yticks(range(L))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("key j", fontsize=8)
        ax.set_ylabel("query i", fontsize=8)
        offset = 0 if alignment == "top-left" else lengths[b] - L
        ax.set_title(f"{alignment}, n_b = {lengths[b]} (o_b = {offset})", fontsize=8)
fig.suptitle(f"is_causal with kv_lengths = {lengths.tolist()}, L = {L}, S = {S}: keys right of the red line are padding",
             fontsize=9)
fig.tight_layout()
