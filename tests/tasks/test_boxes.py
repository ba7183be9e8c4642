"""tasks.boxes against SciPy's find_objects, in 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tasks.boxes import bounding_box


@pytest.mark.parametrize("shape", [(40, 57), (9, 30, 41)])
@pytest.mark.parametrize("seed", range(4))
def test_bounding_box_is_find_objects_box(shape, seed):
    mask = np.random.default_rng(seed).random(shape) > 0.995  # a few scattered voxels
    mask[(0,) * len(shape)] = seed % 2 == 0  # sometimes one at the array's low corner
    if not mask.any():
        mask[(1,) * len(shape)] = True
    assert bounding_box(mask) == ndimage.find_objects(mask.astype(np.uint8))[0]


def test_an_empty_mask_is_refused():
    with pytest.raises(ValueError, match="empty"):
        bounding_box(np.zeros((4, 5), bool))
