"""``tasks.models.area_resize`` against OpenCV's own ``INTER_AREA`` (a test dependency only), and
LiteMedSAM's preprocessing against the reference pipeline built with cv2."""

from __future__ import annotations

import cv2  # opencv-python-headless: a declared test dependency, a missing one must fail, not skip
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from tasks.models.area_resize import area_resize

SIZES = [
    ((512, 512), (256, 256)),  # 2x: OpenCV's 2x2 integer kernel
    ((1024, 768), (256, 192)),  # 4x: integer, rounded half to even
    ((768, 512), (256, 256)),  # 3x by 2x
    ((600, 450), (256, 192)),  # 2.34x: fractional footprints
    ((333, 500), (171, 256)),
    ((257, 300), (256, 256)),  # barely shrinking
    ((511, 511), (256, 256)),
    ((120, 45), (256, 96)),  # enlarging (the breast MR crop under LiteMedSAM)
    ((300, 100), (256, 200)),  # shrinking one axis, enlarging the other
    ((256, 256), (256, 256)),  # identity
]


def image(shape: tuple[int, int], channels: int, smooth: bool, seed: int) -> np.ndarray:
    """Random uint8 pixels: white noise (every rounding case), or smooth fields like a scan."""
    rng = np.random.default_rng(seed)
    full = (*shape, channels)
    if not smooth:
        return rng.integers(0, 256, full, dtype=np.uint8)
    field = gaussian_filter(rng.standard_normal(full), (4, 4, 0)) * 600 + 128
    return np.clip(field, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("src", "dst"), SIZES, ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("smooth", [False, True])
def test_equals_cv2_inter_area(src, dst, channels, smooth):
    pixels = image(src, channels, smooth, seed=hash((src, channels)) % 1000)
    if channels == 1:
        pixels = pixels[..., 0]
    want = cv2.resize(pixels, dst[::-1], interpolation=cv2.INTER_AREA)
    got = area_resize(pixels, *dst)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_refuses_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        area_resize(np.zeros((8, 8), np.float32), 4, 4)


@pytest.fixture(scope="module")
def lite():
    from tasks.models import load_model

    return load_model("litemedsam")


@pytest.mark.parametrize("shape", [(512, 512), (120, 45), (300, 437)])
def test_litemedsam_input_is_the_reference_pipeline(lite, shape):
    """CVPR24_LiteMedSAM_infer.py: cv2 INTER_AREA to long side 256, min-max to [0, 1], pad bottom/right."""
    pixels = image(shape, 3, smooth=True, seed=7)
    h, w = shape
    scale = 256 / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    resized = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    resized = (resized - resized.min()) / np.clip(resized.max() - resized.min(), 1e-8, None)
    want = np.pad(resized, ((0, 256 - new_h), (0, 256 - new_w), (0, 0))).transpose(2, 0, 1)[None]
    tensor, geometry = lite.preprocess(pixels)
    assert geometry.resized == (new_h, new_w)
    np.testing.assert_allclose(tensor.numpy(), want, atol=1e-6)
