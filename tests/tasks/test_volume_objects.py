"""Volume objects of synthetic masks whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.volume_objects import VolumeObject, key_slice, volume_objects

LABELS = {1: "a", 2: "b", 3: "c"}


def test_a_sphere_is_one_component_centred_on_its_key_slice():
    z, y, x = np.indices((21, 31, 41))
    mask = np.zeros((21, 31, 41), np.uint8)
    ball = (z - 10) ** 2 + (y - 15) ** 2 + (x - 20) ** 2 <= 36  # radius 6 around (10, 15, 20)
    mask[ball] = 2
    [obj] = volume_objects(mask, (1.0, 1.0, 1.0), LABELS)
    assert obj == VolumeObject(
        label=2, voxels=int(ball.sum()), volume_mm3=float(ball.sum()), bbox=(4, 9, 14, 16, 21, 26),
        first_slice=4, last_slice=16, key_slice=10, slices=13, components=1,
    )


def test_two_unequal_blobs_key_slice_follows_the_voxels_not_the_range():
    mask = np.zeros((30, 20, 20), np.uint8)
    mask[2:5, 2:12, 2:12] = 1  # slices 2-4, 300 voxels
    mask[20:22, 5:7, 5:7] = 1  # slices 20-21, 8 voxels
    [obj] = volume_objects(mask, (2.0, 1.0, 1.0), LABELS)
    assert (obj.voxels, obj.components, obj.slices) == (308, 2, 5)
    assert (obj.first_slice, obj.last_slice) == (2, 21)
    assert obj.bbox == (2, 2, 2, 21, 11, 11)
    # z of the 308 voxels in z order: 100 each on 2, 3, 4, then 4 each on 20, 21; index 154 is on slice 3.
    z_indices = np.nonzero(mask == 1)[0]
    assert obj.key_slice == z_indices[len(z_indices) // 2] == 3
    assert obj.key_slice != (obj.first_slice + obj.last_slice) // 2  # the range's middle is 11, an empty slice


def test_an_object_on_the_first_slice_and_one_with_a_gap_in_z():
    mask = np.zeros((10, 8, 8), np.uint8)
    mask[0:2, 1:3, 1:3] = 1  # touches slice 0
    mask[3, 4:6, 4:6] = 3
    mask[6:8, 4:6, 4:6] = 3  # gap on slices 4-5: two components, 3 slices in a range of 5
    first, gapped = volume_objects(mask, (1.0, 1.0, 1.0), LABELS)
    assert (first.label, first.first_slice, first.last_slice, first.bbox) == (1, 0, 1, (0, 1, 1, 1, 2, 2))
    assert (first.voxels, first.key_slice, first.components) == (8, 1, 1)  # voxel 4 of 8 in z order is on slice 1
    assert (gapped.label, gapped.first_slice, gapped.last_slice) == (3, 3, 7)
    assert (gapped.slices, gapped.components, gapped.voxels) == (3, 2, 12)
    assert gapped.slices < gapped.last_slice - gapped.first_slice + 1
    assert gapped.key_slice == 6  # z order: 4 on slice 3, 4 on 6, 4 on 7; index 6 is on slice 6


def test_diagonal_neighbours_are_one_component_in_26_connectivity():
    mask = np.zeros((4, 4, 4), np.uint8)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[2, 2, 2] = 1  # corner to corner only
    [obj] = volume_objects(mask, (1.0, 1.0, 1.0), LABELS)
    assert obj.components == 1


def test_anisotropic_spacing_scales_the_volume():
    mask = np.zeros((6, 6, 6), np.int16)
    mask[1:4, 1:3, 2:6] = 1  # 3 * 2 * 4 = 24 voxels
    [obj] = volume_objects(mask, (5.0, 0.5, 0.25), LABELS)
    assert obj.voxels == 24 and obj.volume_mm3 == pytest.approx(24 * 5.0 * 0.5 * 0.25)


def test_unmapped_values_are_skipped_and_labels_come_in_order():
    mask = np.zeros((5, 5, 5), np.uint16)
    mask[0, 0, 0] = 7  # present but not mapped
    mask[4, 4, 4] = 2
    mask[1, 1, 1] = 1
    assert [o.label for o in volume_objects(mask, (1.0, 1.0, 1.0), LABELS)] == [1, 2]
    assert volume_objects(mask, (1.0, 1.0, 1.0), {5: "absent"}) == []
    assert volume_objects(np.zeros((2, 2, 2), np.uint8), (1.0, 1.0, 1.0), LABELS) == []


def test_key_slice_matches_the_listed_indices_rule():
    rng = np.random.default_rng(3)
    for _ in range(50):
        counts = rng.integers(0, 5, rng.integers(1, 12))
        if counts.sum() == 0:
            continue
        z_indices = np.repeat(np.arange(counts.size), counts)
        assert key_slice(counts, 7) == 7 + z_indices[len(z_indices) // 2]


def test_a_mask_that_is_not_3d_is_refused():
    with pytest.raises(ValueError, match=r"\(z, y, x\) mask"):
        volume_objects(np.zeros((4, 4), np.uint8), (1.0, 1.0, 1.0), LABELS)
