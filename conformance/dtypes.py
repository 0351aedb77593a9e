"""The floating dtypes kqv tests, by name: their NumPy dtype, unit roundoff and range.

Inputs are rounded to the dtype under test before anything else (DESIGN.md, "Tolerances"); the
float64 reference then computes on exactly those values. ``bfloat16`` on the NumPy side comes from
``ml_dtypes``; without it, ``bfloat16`` is unavailable and the runner reports it as skipped.
"""

from __future__ import annotations

import numpy as np

DTYPES = ("float64", "float32", "float16", "bfloat16")

# Unit roundoff u = 2^-p of round-to-nearest with p significand bits (DESIGN.md, "Tolerances").
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}

# Half the spacing of the subnormal numbers: the largest absolute error of rounding a tiny value.
# For float64 that half, 2^-1075, is not a float64 (it rounds to 0, which would leave the float64
# bound no allowance for underflow at all), so float64 takes the whole spacing 2^-1074: an upper bound.
# The smallest normal number: below it a kernel that flushes subnormals to zero (XLA on CPU) gives 0.
SMALLEST_NORMAL = {"float64": 2.0**-1022, "float32": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126}
UNDERFLOW = {"float64": 2.0**-1074, "float32": 2.0**-150, "float16": 2.0**-25, "bfloat16": 2.0**-134}

LARGEST = {"float64": float(np.finfo(np.float64).max), "float32": float(np.finfo(np.float32).max),
           "float16": 65504.0, "bfloat16": 3.3895313892515355e38}


def check_dtype_name(name: object, argument: str = "dtype") -> str:
    """``name`` must be one of :data:`DTYPES`; the error names ``argument`` and lists them."""
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"{argument}: expected one of {', '.join(DTYPES)}, got {name!r}")
    return name


def bfloat16_missing() -> str | None:
    """Why bfloat16 arrays cannot be made on the NumPy side, or None when ``ml_dtypes`` is there."""
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return "bfloat16 needs the ml_dtypes package on the NumPy side (pip install ml_dtypes)"
    return None


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of ``name`` (``bfloat16`` from ``ml_dtypes``)."""
    check_dtype_name(name)
    if name == "bfloat16":
        missing = bfloat16_missing()
        if missing:
            raise RuntimeError(missing)
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def name_of(dtype: np.dtype) -> str:
    """The kqv name of a NumPy dtype, or its own name when kqv does not test it (e.g. ``int64``)."""
    return np.dtype(dtype).name


def round_to(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` rounded to the dtype ``name`` (round to nearest even), as an array of that dtype."""
    return np.asarray(array, dtype=np.float64).astype(numpy_dtype(name))


def as_float64(array: np.ndarray) -> np.ndarray:
    """An array of any floating dtype (bfloat16 included) as float64, exactly."""
    return np.asarray(array).astype(np.float64)
