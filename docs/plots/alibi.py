"""The ALiBi bias -m_h |i + o - j| of each head, for the paper's slopes of 4 heads, drawn with the reference's stage."""

import matplotlib.pyplot as plt

from kqv.reference import alibi_slopes
from kqv.reference.stages import alibi_bias

L, S = 6, 10
offset = S - L  # bottom-right: each query's own position is key i + 4
slopes = alibi_slopes(4)
bias = alibi_bias(slopes, L, S, offset)  # (4, L, S)
fig, axes = plt.subplots(1, len(slopes), figsize=(8.0, 2.4), sharey=True)
for h, (ax, slope) in enumerate(zip(axes, slopes)):
    image = ax.imshow(bias[h], cmap="viridis", vmin=bias.min(), vmax=0.0)
    ax.set_title(f"head {h}: m = {slope:g}", fontsize=8)
    ax.set_xlabel("key j", fontsize=7)
    ax.set_xticks(range(0, S, 3))
    ax.set_yticks(range(L))
    ax.tick_params(labelsize=6)
axes[0].set_ylabel("query i", fontsize=7)
fig.colorbar(image, ax=axes, shrink=0.8).ax.tick_params(labelsize=6)
