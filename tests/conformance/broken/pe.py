"""Broken ``pe`` implementations (NumPy), one plausible bug each; ``breaks`` names the clause."""

from __future__ import annotations

import numpy as np

from ._base import breaks


def _angles(length, d_model, denominator=None, base=10000.0, first=0, dtype=np.float64):
    position = np.arange(first, first + length, dtype=dtype)[:, None]  # (length, 1)
    two_i = np.arange(0, d_model, 2, dtype=dtype)  # (ceil(d_model/2),)
    return position * np.power(dtype(base), -two_i / dtype(denominator or d_model))  # (length, ceil(d_model/2))


def _interleave(sines, cosines, d_model):
    out = np.empty((sines.shape[0], d_model), dtype=sines.dtype)
    out[:, 0::2], out[:, 1::2] = sines, cosines[:, :d_model // 2]
    return out


@breaks("pe.sinusoid")
def sin_cos_swapped(length, d_model):
    """Cosine in the even columns, sine in the odd ones."""
    angle = _angles(length, d_model)
    return _interleave(np.cos(angle), np.sin(angle), d_model)


@breaks("pe.sinusoid")
def concatenated_halves(length, d_model):
    """[sin | cos] halves instead of interleaved pairs."""
    angle = _angles(length, d_model)[:, :d_model // 2]
    return np.concatenate([np.sin(angle), np.cos(angle), np.zeros((length, d_model % 2))], axis=1)


@breaks("pe.wavelengths")
def half_dim_minus_one(length, d_model):
    """Interleaved, but with half_dim - 1 in the exponent's denominator (frequencies 10000^(-i/(half-1)))."""
    half = max(d_model // 2 - 1, 1)
    angle = _angles(length, d_model, denominator=2 * half)
    return _interleave(np.sin(angle), np.cos(angle), d_model)


@breaks("pe.odd-d-model")
def odd_width_rounded_down(length, d_model):
    """Drops the unpaired last column of an odd d_model."""
    angle = _angles(length, d_model)[:, :d_model // 2]
    return _interleave(np.sin(angle), np.cos(angle), 2 * (d_model // 2))


@breaks("pe.sinusoid")
def positions_from_one(length, d_model):
    """Counts positions from 1."""
    angle = _angles(length, d_model, first=1)
    return _interleave(np.sin(angle), np.cos(angle), d_model)


@breaks("pe.wavelengths")
def base_1000(length, d_model):
    """Uses 1000 for the base instead of 10000."""
    angle = _angles(length, d_model, base=1000.0)
    return _interleave(np.sin(angle), np.cos(angle), d_model)


@breaks("pe.sinusoid")
def float32_angles(length, d_model):
    """Computes the angles in float32 but returns float64: far positions lose their phase."""
    angle = _angles(length, d_model, dtype=np.float32).astype(np.float64)
    return _interleave(np.sin(angle), np.cos(angle), d_model)


@breaks("pe.rotation")
def position_scaled(length, d_model):
    """Feeds pos / length instead of pos (a "normalised position"), so shifts are no longer rotations."""
    angle = _angles(length, d_model) / max(length, 1)
    return _interleave(np.sin(angle), np.cos(angle), d_model)


@breaks("pe.sinusoid")
def columns_past_128_zero(length, d_model):
    """Writes only the first 128 columns (one tile of features); the others stay zero."""
    angle = _angles(length, d_model)
    out = _interleave(np.sin(angle), np.cos(angle), d_model)
    out[:, 128:] = 0.0
    return out


@breaks("pe.sinusoid")
def halves_half_dim_minus_one(length, d_model):
    """tensor2tensor's get_timing_signal_1d: [sin | cos] halves with max(half_dim - 1, 1) in the exponent's
    denominator."""
    half = d_model // 2
    angle = _angles(length, 2 * half, denominator=2 * max(half - 1, 1))[:, :half]
    return np.concatenate([np.sin(angle), np.cos(angle), np.zeros((length, d_model % 2))], axis=1)


@breaks("pe.odd-d-model")
def halves_even_widths_only(length, d_model):
    """[sin | cos] halves that refuse an odd d_model: the shrunk counterexample of pe.odd-d-model raises."""
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    return concatenated_halves(length, d_model)
