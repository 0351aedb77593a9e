"""The keys each query keeps under a sliding window, in both alignments, drawn from the reference's own stage."""

import matplotlib.pyplot as plt
import numpy as np

from kqv.reference.stages import drop_window

L, S = 6, 10
cases = [("window (2, 0), top-left (o = 0)", 0, (2, 0)), ("window (2, 0), bottom-right (o = S - L = 4)", S - L, (2, 0)),
         ("window (1, 2), bottom-right", S - L, (1, 2)), ("window (None, 0): the causal rule, bottom-right", S - L,
                                                          (None, 0))]
fig, axes = plt.subplots(1, len(cases), figsize=(11.0, 2.8))
for ax, (title, offset, window) in zip(axes, cases):
    kept = drop_window(np.zeros((L, S)), offset, window) == 0  # (L, S): True where query i keeps key j
    ax.imshow(kept, cmap="Blues", vmin=-0.3, vmax=1.2)
    ax.set_xticks(range(S))
    ax.set_yticks(range(L))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("key j", fontsize=8)
    ax.set_ylabel("query i", fontsize=8)
    ax.set_title(title, fontsize=8)
fig.suptitle(f"L = {L}, S = {S}: query i keeps key j iff i + o - left <= j <= i + o + right", fontsize=9)
fig.tight_layout()
