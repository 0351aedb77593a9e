"""The built-in backends, by target name.

``numpy`` is the reference itself (kinds sdpa, mha and pe); ``torch-sdpa-cpu`` and
``torch-sdpa-cuda`` are torch's ``scaled_dot_product_attention`` with torch's own kernel choice,
``torch-sdpa-<device>-<kernel>`` the same pinned to one kernel; ``torch-sdpa-cpu-lower-right`` the same with
``is_causal`` as ``torch.nn.attention.bias.causal_lower_right`` (bottom-right); ``torch-mha-cpu`` is
``torch.nn.MultiheadAttention`` called as a function, ``torch-mha-<form>`` its module forms;
``torch-flex-cpu`` is ``torch.nn.attention.flex_attention`` run eagerly on the CPU, each variant a
``score_mod`` or ``mask_mod``; ``jax-sdpa-cpu`` is ``jax.nn.dot_product_attention``; ``onnxruntime-attention-cpu`` and
``onnx-reference-attention`` run ONNX's ``Attention``, and with the ``-past`` suffix the same with the keys
fed as its KV cache (``past_key``, ``past_value``), judged bottom-right. A backend whose package or device is missing
here is reported as unavailable, with the reason, never dropped silently.
"""

from __future__ import annotations

from typing import Callable

from ..backend import Backend
from . import (jax_sdpa, numpy_reference, onnx_attention, onnx_attention_past, torch_flex, torch_mha, torch_mha_module,
               torch_sdpa, torch_sdpa_kernels, torch_sdpa_lower_right)

BUILTINS: dict[str, Callable[[], dict[str, Backend]]] = {
    "numpy": numpy_reference.backends,
    "torch-sdpa-cpu": lambda: {"sdpa": torch_sdpa.backend("cpu")},
    "torch-sdpa-cuda": lambda: {"sdpa": torch_sdpa.backend("cuda")},
    "torch-sdpa-cpu-lower-right": lambda: {"sdpa": torch_sdpa_lower_right.backend()},
    "torch-mha-cpu": lambda: {"mha": torch_mha.backend("cpu")},
    "torch-sdpa-cpu-math": lambda: {"sdpa": torch_sdpa_kernels.backend("cpu", "MATH")},
    "torch-sdpa-cpu-flash": lambda: {"sdpa": torch_sdpa_kernels.backend("cpu", "FLASH_ATTENTION")},
    "torch-sdpa-cuda-flash": lambda: {"sdpa": torch_sdpa_kernels.backend("cuda", "FLASH_ATTENTION")},
    "torch-sdpa-cuda-efficient": lambda: {"sdpa": torch_sdpa_kernels.backend("cuda", "EFFICIENT_ATTENTION")},
    "torch-sdpa-cuda-cudnn": lambda: {"sdpa": torch_sdpa_kernels.backend("cuda", "CUDNN_ATTENTION")},
    "torch-mha-eval": lambda: {"mha": torch_mha_module.backend("eval")},
    "torch-mha-eval-weights": lambda: {"mha": torch_mha_module.backend("eval-weights")},
    "torch-mha-train": lambda: {"mha": torch_mha_module.backend("train")},
    "torch-mha-seq-first": lambda: {"mha": torch_mha_module.backend("seq-first")},
    "torch-flex-cpu": lambda: {"sdpa": torch_flex.backend()},
    "jax-sdpa-cpu": lambda: {"sdpa": jax_sdpa.backend()},
    "onnxruntime-attention-cpu": lambda: {"sdpa": onnx_attention.backend("onnxruntime")},
    "onnx-reference-attention": lambda: {"sdpa": onnx_attention.backend("reference")},
    "onnxruntime-attention-cpu-past": lambda: {"sdpa": onnx_attention_past.backend("onnxruntime")},
    "onnx-reference-attention-past": lambda: {"sdpa": onnx_attention_past.backend("reference")},
}


def builtin(name: str) -> dict[str, Backend]:
    """The backends of the built-in target ``name``, by kind; a KeyError listing the names otherwise."""
    if name not in BUILTINS:
        raise KeyError(f"unknown built-in backend {name!r}; known: {', '.join(BUILTINS)}")
    return BUILTINS[name]()


__all__ = ["BUILTINS", "builtin"]
