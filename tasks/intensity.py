"""Intensity presets: map a modality's raw values to the 0..255 range SAM-family models expect."""

from __future__ import annotations

import numpy as np

from records.cards import CTWindow, Intensity, PercentileClip


def window(channel: np.ndarray, preset: Intensity) -> tuple[float, float]:
    """The (low, high) raw values that map to 0 and 255 for one channel of a whole case.

    Percentiles are taken over the channel's non-zero voxels of the whole volume (MedSAM's recipe),
    computed once at ingest so every slice of a case is scaled alike.
    """
    if isinstance(preset, CTWindow):
        return preset.level - preset.width / 2, preset.level + preset.width / 2
    if isinstance(preset, PercentileClip):
        values = channel[channel != 0]
        if values.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(values, [preset.lower, preset.upper])
        return float(lo), float(max(hi, lo + 1e-6))
    return 0.0, 255.0


def to_uint8(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip ``plane`` to [low, high] and rescale to uint8."""
    scaled = (np.clip(plane.astype(np.float32), low, high) - low) / (high - low)
    return np.round(scaled * 255).astype(np.uint8)
