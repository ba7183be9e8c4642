"""Intensity presets and per-slice objects on synthetic arrays (known answers by construction)."""

from __future__ import annotations

import numpy as np
import pytest

from records.cards import CTWindow, Passthrough, PercentileClip
from tasks.intensity import to_uint8, window
from tasks.objects import slice_objects


def test_ct_window_maps_level_and_width():
    low, high = window(np.zeros((1, 2, 2)), CTWindow(level=40, width=400))
    assert (low, high) == (-160, 240)
    np.testing.assert_array_equal(to_uint8(np.array([-1000, -160, 40, 240, 3000]), low, high), [0, 0, 128, 255, 255])


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
