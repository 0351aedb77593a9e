"""``sdpa`` implementations that take their process down on some inputs (more than 3 keys), as kernels under
development do: an abort, a segfault, an exit, a call that never returns; and one that warns and prints on every call.

Only a run with isolation (a worker process per backend) survives the first four; each must fail the
case that caused it, name the fault, and let the run go on.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
import warnings

from kqv.reference import scaled_dot_product_attention

FAULTY_KEYS = 3  # more keys than this and the fault strikes


def _correct(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale).astype(query.dtype)


def aborts(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Calls abort() (SIGABRT), as a failed assertion in C does."""
    if key.shape[-2] > FAULTY_KEYS:
        os.abort()
    return _correct(query, key, value, attn_mask, dropout_p, is_causal, scale)


def segfaults(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Reads address 0 (SIGSEGV), as an out-of-bounds tile load does."""
    if key.shape[-2] > FAULTY_KEYS:
        ctypes.string_at(0)
    return _correct(query, key, value, attn_mask, dropout_p, is_causal, scale)


def exits(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Ends its process with status 3, as a library that calls exit() on an error does."""
    if key.shape[-2] > FAULTY_KEYS:
        os._exit(3)
    return _correct(query, key, value, attn_mask, dropout_p, is_causal, scale)


def hangs(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Never returns, as a deadlocked kernel does."""
    if key.shape[-2] > FAULTY_KEYS:
        while True:
            time.sleep(1)
    return _correct(query, key, value, attn_mask, dropout_p, is_causal, scale)


def chatty(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Correct, but warns, prints and writes to its file descriptor 2 on every call."""
    warnings.warn("chatty kernel: the last dimension is not contiguous", UserWarning)
    print("chatty kernel: launching")
    os.write(2, b"chatty kernel: native log line\n")
    sys.stdout.flush()
    return _correct(query, key, value, attn_mask, dropout_p, is_causal, scale)
