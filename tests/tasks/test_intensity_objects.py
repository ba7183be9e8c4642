"""Intensity presets and per-slice objects on synthetic arrays (known answers by construction)."""

from __future__ import annotations

import numpy as np
import pytest

from records.cards import CTWindow, Passthrough, PercentileClip
from records.windows import WINDOWS
from tasks.evaluate_unit import slice_rgb
from tasks.intensity import parse_window, to_uint8, window
from tasks.objects import slice_objects


def test_ct_window_maps_level_and_width():
    low, high = window(np.zeros((1, 2, 2)), CTWindow(level=40, width=400))
    assert (low, high) == (-160, 240)
    np.testing.assert_array_equal(to_uint8(np.array([-1000, -160, 40, 240, 3000]), low, high), [0, 0, 128, 255, 255])


def test_window_presets_are_named_and_cited():
    assert CTWindow(preset="ct-lung-medsam-paper").level == -160 and CTWindow(preset="ct-lung").level == -600
    assert all(preset.source and preset.width > 0 for preset in WINDOWS.values())
    assert window(np.zeros((1, 2, 2)), CTWindow(preset="ct-lung")) == (-1350, 150)
    with pytest.raises(ValueError, match="preset 'ct-lung' is L-600/W1500"):
        CTWindow(preset="ct-lung", level=40, width=400)


def test_parse_window_takes_a_preset_or_level_width():
    assert parse_window("ct-lung-medsam-paper") == (-910, 590)
    assert parse_window("40,400") == (-160, 240)
    for bad, message in (("lungs", "unknown CT window 'lungs'"), ("40", "unknown CT window"),
                         ("40,x", "LEVEL,WIDTH"), ("40,0", "width must be > 0")):
        with pytest.raises(ValueError, match=message):
            parse_window(bad)


class _StoredSlice:
    """Synthetic stand-in for a StoredCase (plumbing only): one CT plane and the window stored at ingest."""

    meta = {"window": [[-1350.0, 150.0]]}

    def image_slice(self, z: int) -> np.ndarray:
        return np.array([[[-1350.0, -600.0, -160.0, 150.0]]])


def test_evaluate_time_window_replaces_the_stored_one():
    stored = slice_rgb(_StoredSlice(), 0)
    override = slice_rgb(_StoredSlice(), 0, parse_window("ct-lung-medsam-paper"))
    assert stored.shape == override.shape == (1, 4, 3)
    assert stored[0, :, 0].tolist() == [0, 128, 202, 255]
    assert override[0, :, 0].tolist() == [0, 53, 128, 180]


def test_percentiles_ignore_zero_voxels():
    volume = np.zeros((4, 10, 10))
    volume[:, :5] = np.arange(1, 201).reshape(4, 5, 10)  # zeros (background) must not pull the low end down
    low, high = window(volume, PercentileClip(lower=0.5, upper=99.5))
    assert low == pytest.approx(np.percentile(np.arange(1, 201), 0.5))
    assert high == pytest.approx(np.percentile(np.arange(1, 201), 99.5))
    assert window(np.zeros((2, 2)), PercentileClip()) == (0.0, 1.0)
    assert window(np.zeros((2, 2)), Passthrough()) == (0.0, 255.0)


def test_objects_per_slice_and_label_with_boxes_areas_and_components():
    mask = np.zeros((3, 20, 30), np.uint8)
    mask[1, 2:6, 3:8] = 1  # 4 x 5 block
    mask[1, 10:12, 20:22] = 1  # a second component of label 1
    mask[1, 15:17, 0:3] = 2
    mask[2, 0:1, 0:1] = 9  # not in the card's map: ignored
    objects = list(slice_objects(mask, (5.0, 0.5, 0.8), {1: "a", 2: "b"}))
    assert [(o.slice_index, o.label) for o in objects] == [(1, 1), (1, 2)]
    first = objects[0]
    assert first.area_px == 24 and first.components == 2 and first.bbox == (2, 3, 11, 21)
    assert first.area_mm2 == pytest.approx(24 * 0.5 * 0.8)
    assert objects[1].bbox == (15, 0, 16, 2) and objects[1].components == 1
