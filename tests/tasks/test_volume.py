"""to_volume: the canonical-orientation shortcut and the arrays over ITK's own buffers (synthetic images)."""

from __future__ import annotations

import gc

import numpy as np
import SimpleITK as sitk

from tasks.objects import slice_objects
from tasks.volume import _canonical, to_volume


def _image(array: np.ndarray, direction: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((1.0, -2.0, 3.0))
    image.SetDirection(tuple(direction.ravel()))
    return image


def test_an_already_canonical_image_is_kept_and_matches_dicomorient():
    """An oblique image nearest to LPS is returned as it is, and equals what DICOMOrient makes of it."""
    angle = 0.3
    oblique = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    image = _image(np.arange(210, dtype=np.int16).reshape(5, 6, 7), oblique)
    kept, itk = _canonical(image), sitk.DICOMOrient(image, "LPS")
    assert kept is image
    assert np.array_equal(sitk.GetArrayFromImage(kept), sitk.GetArrayFromImage(itk))
    assert (kept.GetDirection(), kept.GetOrigin(), kept.GetSpacing()) == (itk.GetDirection(), itk.GetOrigin(), itk.GetSpacing())


def test_volume_arrays_lie_over_the_itk_buffers_and_keep_them_alive():
    array = np.arange(210, dtype=np.int16).reshape(5, 6, 7)
    labels = (array % 3).astype(np.uint8)
    ras = np.diag([-1.0, -1.0, 1.0])  # reoriented: x and y flipped
    for direction, expected in ((np.eye(3), array), (ras, array[:, ::-1, ::-1])):
        volume = to_volume([_image(array, direction)], _image(labels, direction))
        gc.collect()
        np.zeros(1 << 20)  # reuse freed memory, were the images gone
        assert not volume.image.flags.owndata and volume.image.shape == (1, 5, 6, 7)
        assert np.array_equal(volume.image[0], expected)
        assert np.array_equal(volume.mask, expected % 3)


def test_slice_objects_come_by_slice_then_label():
    mask = np.zeros((3, 8, 8), np.uint8)
    mask[2, 1:3, 1:4] = 2
    mask[0, 5, 5] = 2
    mask[2, 6, 0:2] = 1
    mask[2, 6, 6] = 1
    found = [(o.slice_index, o.label, o.area_px, o.bbox, o.components) for o in slice_objects(mask, (1, 1, 1), {1: "a", 2: "b"})]
    assert found == [(0, 2, 1, (5, 5, 5, 5), 1), (2, 1, 3, (6, 0, 6, 6), 2), (2, 2, 6, (1, 1, 2, 3), 1)]


def test_unique_lists_what_numpy_unique_lists():
    """The value listing of the label check equals np.unique for every kind of mask it can meet: the
    boxed path (non-negative integers up to 65535, in any integer dtype and memory order, with and
    without background) and the slab path (negative, larger or non-integer values, bool masks)."""
    from tasks.volume import _unique

    rng = np.random.default_rng(3)
    base = rng.choice([0, 1, 3, 7], size=(40, 9, 11), p=[0.7, 0.1, 0.1, 0.1])
    masks = [base.astype(dtype) for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64)]
    masks += [
        base.astype(np.uint8)[:, ::-1, :].transpose(0, 2, 1),  # a reoriented view, not a copy
        base.astype(np.uint8) + 1,  # no background
        np.zeros((3, 4, 5), np.uint8),  # background only
        (base * 9000).astype(np.uint16),  # values up to 63000: still boxed
        (base * 9000 + 3000).astype(np.int32)[:, :, ::2],  # up to 66000: slabs
        base.astype(np.int16) - 1,  # negative values
        base.astype(np.float32) / 2, base > 2,  # non-integer values, bool
    ]
    for mask in masks:
        got, want = _unique(mask, slab=8), np.unique(mask)
        assert got.dtype == want.dtype and np.array_equal(got, want), (mask.dtype, want)


def test_labels_read_as_background_leave_the_narrowest_dtype():
    """Unmapped values turned into background no longer count for the stored dtype: a mask of 0, 1
    and 300 whose card maps 1 is stored as uint8; mapping 300 too keeps uint16."""
    from pathlib import Path

    from tasks.volume import check_label_values

    mask = np.zeros((2, 3, 4), np.int32)
    mask[0, 0, 0], mask[1, 2, 3] = 1, 300
    kept = check_label_values(mask, {1: "a"}, Path("label.nii.gz"), unmapped="background")
    assert kept.dtype == np.uint8 and sorted(np.unique(kept).tolist()) == [0, 1]
    both = check_label_values(mask, {1: "a", 300: "b"}, Path("label.nii.gz"))
    assert both.dtype == np.uint16 and int(both[1, 2, 3]) == 300
