"""Which key/value head each query head reads: the spec's repeat-interleave (drawn from the reference) and tiling."""

import matplotlib.pyplot as plt

from kqv.reference.stages import kv_head

QUERY_HEADS, KV_HEADS = 8, 2
rules = [("repeat-interleave: h reads floor(h / G) (the spec)", lambda h: kv_head(h, QUERY_HEADS, KV_HEADS)),
         ("tiling: h reads h mod H_kv (the classic bug)", lambda h: h % KV_HEADS)]
fig, axes = plt.subplots(1, 2, figsize=(8.0, 2.6))
for ax, (title, reads) in zip(axes, rules):
    kv_x = [(QUERY_HEADS - 1) * (g + 0.5) / KV_HEADS for g in range(KV_HEADS)]
    for h in range(QUERY_HEADS):
        g = reads(h)
        ax.plot([h, kv_x[g]], [1, 0], color=f"C{g}", linewidth=1.5)
        ax.annotate(f"q{h}", (h, 1), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
    ax.scatter(range(QUERY_HEADS), [1] * QUERY_HEADS, color="black", zorder=3, s=18)
    for g, x in enumerate(kv_x):
        ax.scatter([x], [0], color=f"C{g}", zorder=3, s=60)
        ax.annotate(f"kv{g}", (x, 0), xytext=(0, -14), textcoords="offset points", ha="center", fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-0.8, QUERY_HEADS - 0.2)
    ax.set_ylim(-0.45, 1.4)
    ax.axis("off")
fig.suptitle("H_q = 8 query heads, H_kv = 2 key/value heads, G = 4", fontsize=9)
fig.tight_layout()
