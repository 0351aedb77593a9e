"""Split-KV: the lse of two blocks of keys combine into the lse of the row (clause lse.combine), drawn with the
reference's own lse."""

import matplotlib.pyplot as plt
import numpy as np

from kqv.reference import scaled_dot_product_attention

rng = np.random.default_rng(0)
L, S, E = 12, 16, 8
query, key, value = rng.standard_normal((L, E)) * 2, rng.standard_normal((S, E)), rng.standard_normal((S, 1))
first = np.broadcast_to(np.arange(S) < S // 2, (L, S))  # (L, S): block a keeps keys 0 .. S/2 - 1
_, whole = scaled_dot_product_attention(query, key, value, return_lse=True)
(_, a), (_, b) = (scaled_dot_product_attention(query, key, value, attn_mask=keep, return_lse=True)
                  for keep in (first, ~first))
rows = np.arange(L)
fig, ax = plt.subplots(figsize=(6.0, 3.2))
ax.plot(rows, a, "o", color="C0", markersize=4, label="a: lse of keys 0..7")
ax.plot(rows, b, "s", color="C1", markersize=4, label="b: lse of keys 8..15")
ax.plot(rows, whole, "-", color="0.3", linewidth=1.5, label="lse of all keys")
ax.plot(rows, np.logaddexp(a, b), "x", color="C3", markersize=6, label="log(exp(a) + exp(b))")
ax.set_xlabel("query row i", fontsize=8)
ax.set_ylabel("lse (natural log)", fontsize=8)
ax.tick_params(labelsize=7)
ax.legend(fontsize=7, loc="best")
fig.tight_layout()
