"""The soft cap c tanh(y / c) against the score y, for a few caps, drawn with the reference's own stage."""

import matplotlib.pyplot as plt
import numpy as np

from kqv.reference.stages import soft_cap

y = np.linspace(-60.0, 60.0, 601)
fig, ax = plt.subplots(figsize=(6.0, 3.2))
ax.plot(y, y, color="0.7", linewidth=1, linestyle="--", label="no cap (x = y)")
for number, cap in enumerate((5.0, 20.0, 50.0)):
    ax.plot(y, soft_cap(y, cap), color=f"C{number}", label=f"c = {cap:g}")
    ax.axhline(cap, color=f"C{number}", linewidth=0.5, linestyle=":")
    ax.axhline(-cap, color=f"C{number}", linewidth=0.5, linestyle=":")
ax.set_xlim(y[0], y[-1])
ax.set_ylim(-60, 60)
ax.set_xlabel("scaled score y = s q . k", fontsize=8)
ax.set_ylabel("capped score x = c tanh(y / c)", fontsize=8)
ax.tick_params(labelsize=7)
ax.legend(fontsize=7, loc="upper left")
fig.tight_layout()
