"""Broken grouped-query implementations (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``gqa=True`` and is correct without ``enable_gqa``; only its head mapping is wrong.
"""

from __future__ import annotations

import numpy as np

from ._base import attention, breaks, repeat_heads


def tile_heads(array, query_heads):
    """Tiling: query head h reads key/value head h % H_kv (np.tile instead of np.repeat)."""
    reps = [1] * array.ndim
    reps[-3] = query_heads // array.shape[-3]
    return np.tile(array, reps)


def reversed_heads(array, query_heads):
    """Head h reads key/value head H_kv - 1 - h // G: the groups in the opposite order."""
    return repeat_heads(np.flip(array, axis=-3), query_heads)


@breaks("gqa.head-mapping", gqa=True)
def tiled(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Tiles the key/value heads (h % H_kv) instead of repeating them in place (h // G)."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, map_keys=tile_heads,
                     map_values=tile_heads)


@breaks("gqa.head-mapping", gqa=True)
def groups_reversed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Maps the groups in reverse: query head h reads key/value head H_kv - 1 - h // G."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, map_keys=reversed_heads,
                     map_values=reversed_heads)


@breaks("gqa.head-mapping", gqa=True)
def keys_tiled_values_repeated(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                               enable_gqa=False):
    """Repeats the value heads in place but tiles the key heads."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, map_keys=tile_heads)


@breaks("gqa.head-mapping", gqa=True)
def values_tiled_keys_repeated(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                               enable_gqa=False):
    """Repeats the key heads in place but tiles the value heads."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, map_values=tile_heads)


@breaks("gqa.head-mapping", gqa=True)
def group_from_batch_axis(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                          enable_gqa=False):
    """Takes the group size from the wrong tensor axis: G = H_q // key.shape[0] (the batch, not the heads)."""
    def wrong(array, query_heads):
        return np.repeat(array, max(1, query_heads // array.shape[0]), axis=-3)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, map_keys=wrong,
                     map_values=wrong)


@breaks("gqa.multi-query", gqa=True)
def single_head_squeezed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                         enable_gqa=False):
    """Multi-query shortcut: a single key/value head is squeezed out, so the batch dims broadcast one axis off."""
    if enable_gqa and key.shape[-3] == 1:
        key, value = key[..., 0, :, :], value[..., 0, :, :]  # (..., S, .): the batch axis now meets the heads
        return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@breaks("gqa.repeat-interleave", gqa=True)
def grouped_path_tiles(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                       enable_gqa=False):
    """Its grouped path tiles the heads, while its ordinary path (on heads repeated by the caller) is right."""
    return tiled(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@breaks("gqa.group-structure", gqa=True)
def groups_tiled(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Tiled heads again, seen through the group structure: moving a key/value head does not move its group."""
    return tiled(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
