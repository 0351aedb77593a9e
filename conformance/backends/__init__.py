"""The built-in backends, by target name.

``numpy`` is the reference itself (kinds sdpa, mha and pe); ``torch-sdpa-cpu`` and
``torch-sdpa-cuda`` are torch's ``scaled_dot_product_attention``; ``torch-mha-cpu`` is
``torch.nn.MultiheadAttention``. A backend whose package or device is missing here is reported as
unavailable, with the reason, never dropped silently.
"""

from __future__ import annotations

from typing import Callable

from ..backend import Backend
from . import numpy_reference, torch_mha, torch_sdpa

BUILTINS: dict[str, Callable[[], dict[str, Backend]]] = {
    "numpy": numpy_reference.backends,
    "torch-sdpa-cpu": lambda: {"sdpa": torch_sdpa.backend("cpu")},
    "torch-sdpa-cuda": lambda: {"sdpa": torch_sdpa.backend("cuda")},
    "torch-mha-cpu": lambda: {"mha": torch_mha.backend("cpu")},
}


def builtin(name: str) -> dict[str, Backend]:
    """The backends of the built-in target ``name``, by kind; a KeyError listing the names otherwise."""
    if name not in BUILTINS:
        raise KeyError(f"unknown built-in backend {name!r}; known: {', '.join(BUILTINS)}")
    return BUILTINS[name]()


__all__ = ["BUILTINS", "builtin"]
