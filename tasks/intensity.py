"""Intensity presets: map a modality's raw values to the 0..255 range SAM-family models expect.

Sources: CT windows are named presets of ``records.windows``, each citing its source; the
percentile clip over non-zero voxels is MedSAM's MR/US/X-ray recipe
(``bowang-lab/MedSAM@d71e8a1:utils/pre_CT_MR.py``); passthrough is MedSAM's rule for images already
in 0..255 (``utils/pre_grey_rgb.py``).
"""

from __future__ import annotations

import numpy as np

from records.cards import CTWindow, Intensity, PercentileClip
from records.windows import window_preset


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


def parse_window(text: str) -> tuple[float, float]:
    """The (low, high) raw values of a CT window given as a preset name or as ``LEVEL,WIDTH`` in HU.

    Meant for replacing a case's stored window at evaluate time (``tasks.evaluate_unit.slice_rgb``).
    """
    if "," not in text:
        preset = window_preset(text.strip())
        level, width = preset.level, preset.width
    else:
        try:
            level, width = (float(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"window {text!r} must be a preset name or LEVEL,WIDTH (two numbers)") from None
        if not width > 0:
            raise ValueError(f"window {text!r}: the width must be > 0")
    return level - width / 2, level + width / 2
