"""Adapters: NumPy arrays in the dtype under test to a backend's own arrays, and its outputs back.

Every check builds its inputs as NumPy arrays already rounded to the dtype under test; an adapter
turns them into the backend's arrays (NumPy arrays, torch tensors on CPU or CUDA) in one of the
memory layouts of :data:`LAYOUTS` (clause ``impl.strided-inputs``), and turns the backend's output
back into a NumPy array of the same dtype, refusing anything that is not the backend's array type. An adapter
whose arrays can be differentiated (:attr:`Adapter.differentiates`) also gives the gradients of a call
(``Adapter.vjp``): torch through autograd, JAX through ``jax.vjp``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dtypes import name_of, numpy_dtype

# contiguous: a fresh C-contiguous array; transposed: the last two axes stored in swapped order;
# stepped: every other element of a buffer twice as long along the last axis; offset: a view that
# starts one element into its buffer; expanded: stride 0 along the first axis (its entries are equal).
LAYOUTS = ("contiguous", "transposed", "stepped", "offset", "expanded")


class OutputTypeError(Exception):
    """The backend returned something that is not an array of its own type (or not on its device)."""


class Adapter:
    """Base class: the name of the array type and the conversions both ways."""

    name = "adapter"
    array_type = "array"
    differentiates = False  # vjp works: the backend needs no backward callable of its own

    def vjp(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], grad_output: Any) -> tuple[Any, ...]:
        """The gradients of ``fn(*args, **kwargs)`` with respect to each of ``args``, given ``grad_output``: the
        vector-Jacobian product ``dO^T J``, in this adapter's arrays."""
        raise TypeError(f"{self.array_type} arrays cannot be differentiated by kqv: the backend needs a backward "
                        f"callable")

    def unavailable(self) -> str | None:
        """Why this adapter cannot run here (a package or a device is missing), or None."""
        return None

    def to_native(self, array: np.ndarray, layout: str = "contiguous") -> Any:
        raise NotImplementedError

    def to_numpy(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def unchanged(self, native: Any, original: np.ndarray) -> bool:
        """True when ``native`` still holds bitwise the values of ``original`` (NaN payloads included)."""
        now = self.to_numpy(native)
        if now.shape != original.shape or now.dtype != original.dtype:
            return False
        return np.ascontiguousarray(now).tobytes() == np.ascontiguousarray(original).tobytes()


def _layout_check(array: np.ndarray, layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "expanded" and array.ndim and array.shape[0] > 1 and not _equal_along_first(array):
        raise ValueError("layout 'expanded' needs an array whose entries are equal along its first axis")


def _equal_along_first(array: np.ndarray) -> bool:
    first = np.ascontiguousarray(array[:1]).tobytes()
    return all(np.ascontiguousarray(array[n:n + 1]).tobytes() == first for n in range(1, array.shape[0]))


class NumpyAdapter(Adapter):
    """NumPy arrays; bfloat16 through ``ml_dtypes``."""

    name = "numpy"
    array_type = "numpy.ndarray"

    def to_native(self, array: np.ndarray, layout: str = "contiguous") -> np.ndarray:
        _layout_check(array, layout)
        if layout == "contiguous" or array.ndim == 0:
            return np.array(array, copy=True, order="C")
        if layout == "transposed":
            if array.ndim < 2:
                return np.array(array, copy=True)
            return np.swapaxes(np.ascontiguousarray(np.swapaxes(array, -1, -2)), -1, -2)
        if layout == "stepped":
            buffer = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)  # (..., 2n)
            buffer[..., ::2] = array
            return buffer[..., ::2]  # (..., n), stride 2 along the last axis
        if layout == "offset":
            flat = np.zeros(array.size + 1, dtype=array.dtype)
            view = flat[1:].reshape(array.shape)
            view[...] = array
            return view
        return np.broadcast_to(np.array(array[:1], copy=True), array.shape)  # expanded: stride 0 on axis 0

    def to_numpy(self, value: Any) -> np.ndarray:
        if not isinstance(value, np.ndarray):
            raise OutputTypeError(f"returned {type(value).__module__}.{type(value).__qualname__}, "
                                  f"expected {self.array_type}")
        return np.array(value, copy=True)


def _torch_dtype(dtype: np.dtype):
    import torch

    name = name_of(dtype)
    if name == "bfloat16":
        return torch.bfloat16
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class TorchAdapter(Adapter):
    """torch tensors on ``device`` (``cpu`` or ``cuda``); bfloat16 moves bit for bit through int16."""

    name = "torch"
    array_type = "torch.Tensor"
    differentiates = True

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def unavailable(self) -> str | None:
        try:
            import torch
        except ImportError:
            return "torch is not installed (pip install torch)"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            return "CUDA is not available (torch.cuda.is_available() is False)"
        return None

    def _tensor(self, array: np.ndarray):
        import torch

        array = np.ascontiguousarray(array)
        if name_of(array.dtype) == "bfloat16":
            return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16).to(self.device)
        return torch.from_numpy(array.copy()).to(self.device)

    def to_native(self, array: np.ndarray, layout: str = "contiguous") -> Any:
        import torch

        _layout_check(array, layout)
        if layout == "contiguous" or array.ndim == 0:
            return self._tensor(array)
        if layout == "transposed":
            if array.ndim < 2:
                return self._tensor(array)
            return self._tensor(np.swapaxes(array, -1, -2)).transpose(-1, -2)
        if layout == "stepped":
            buffer = torch.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=_torch_dtype(array.dtype),
                                 device=self.device)  # (..., 2n)
            buffer[..., ::2] = self._tensor(array)
            return buffer[..., ::2]  # (..., n), stride 2 along the last axis
        if layout == "offset":
            flat = torch.zeros(array.size + 1, dtype=_torch_dtype(array.dtype), device=self.device)
            view = flat[1:].view(array.shape)
            view.copy_(self._tensor(array))
            return view
        return self._tensor(array[:1]).expand(array.shape)  # expanded: stride 0 on axis 0

    def vjp(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], grad_output: Any) -> tuple[Any, ...]:
        """Autograd: each of ``args`` as a leaf that requires grad (a view of the same memory, so the inputs keep
        their strides and a write to them shows), then ``torch.autograd.grad(fn(...), leaves, grad_output)``; an
        input the output does not depend on gets zeros."""
        import torch

        leaves = tuple(arg.detach().requires_grad_(True) for arg in args)
        with torch.enable_grad():
            output = fn(*leaves, **kwargs)
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"the call returned {type(output).__module__}.{type(output).__qualname__}, expected "
                                f"a torch.Tensor to differentiate")
            if output.grad_fn is None:
                raise RuntimeError("the output has no grad_fn: the backend ran without autograd (torch.no_grad, "
                                   ".detach(), or through NumPy)")
            grads = torch.autograd.grad(output, leaves, grad_output, allow_unused=True)
        return tuple(torch.zeros_like(leaf) if grad is None else grad for leaf, grad in zip(leaves, grads))

    def to_numpy(self, value: Any) -> np.ndarray:
        import torch

        if not isinstance(value, torch.Tensor):
            raise OutputTypeError(f"returned {type(value).__module__}.{type(value).__qualname__}, "
                                  f"expected {self.array_type}")
        if value.device.type != torch.device(self.device).type:
            raise OutputTypeError(f"returned a tensor on {value.device}, expected one on {self.device} like its inputs")
        value = value.detach().to("cpu")
        if value.dtype == torch.bfloat16:
            return value.contiguous().view(torch.int16).numpy().view(numpy_dtype("bfloat16")).copy()
        return value.contiguous().numpy().copy()
