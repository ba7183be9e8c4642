"""OpenCV's ``INTER_AREA`` resize of uint8 images, written with NumPy so the runtime needs no cv2.

LiteMedSAM's reference inference (``bowang-lab/MedSAM@b0fab47`` branch LiteMedSAM,
``CVPR24_LiteMedSAM_infer.py``, ``resize_longest_side``) resizes with ``cv2.resize(...,
interpolation=cv2.INTER_AREA)``; torch's antialiased bilinear differs from it by up to 0.3 grey
levels per pixel and moves Dice. OpenCV is a large binary dependency for one function, so this
module reproduces the three code paths of OpenCV's ``resize`` for ``INTER_AREA`` on 8-bit images
(``modules/imgproc/src/resize.cpp``), tested equal to ``cv2`` in tests/tasks/test_area_resize.py:

* shrinking by an integer factor on both axes (``resizeAreaFast``): the mean of each block, with
  OpenCV's rounding (half up for 2x2, half to even otherwise);
* shrinking by any other factor (``resizeArea``): each output pixel is the average of the input
  pixels its footprint covers, weighted by the covered fraction, summed in float32 in OpenCV's order
  and rounded to nearest;
* enlarging on either axis: OpenCV's area-mode linear interpolation (coefficient
  ``fx = (d + 1) - (floor(d * scale) + 1) / scale``, wrapped to [0, 1)), in its 11-bit fixed point and the
  rounding of its vectorised vertical pass.
"""

from __future__ import annotations

import math

import numpy as np

_COEF_BITS = 11  # INTER_RESIZE_COEF_BITS
_COEF_SCALE = 1 << _COEF_BITS


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)`` for a uint8 (H, W[, C]) image."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"area_resize expects a uint8 (H, W) or (H, W, C) image, got {image.dtype} {image.shape}")
    if height < 1 or width < 1:
        raise ValueError(f"area_resize needs a positive output size, got {(height, width)}")
    planar = image.ndim == 2
    pixels = image[..., None] if planar else image
    src_h, src_w = pixels.shape[:2]
    scale_y, scale_x = src_h / height, src_w / width
    if scale_y >= 1 and scale_x >= 1:
        if abs(scale_y - round(scale_y)) < 2.2e-16 and abs(scale_x - round(scale_x)) < 2.2e-16:
            out = _block_mean(pixels, round(scale_y), round(scale_x))
        else:
            out = _area_shrink(pixels, height, width)
    else:
        out = _area_linear(pixels, height, width)
    return out[..., 0] if planar else out


def _block_mean(pixels: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Integer shrink: block means. OpenCV's 2x2 kernel rounds half up in integers ((sum + 2) >> 2);
    every other factor multiplies by the float32 reciprocal of the area and rounds half to even."""
    h, w, c = pixels.shape[0] // fy, pixels.shape[1] // fx, pixels.shape[2]
    sums = pixels[: h * fy, : w * fx].astype(np.int64).reshape(h, fy, w, fx, c).sum(axis=(1, 3))
    if fy == fx == 2:
        return ((sums + 2) >> 2).astype(np.uint8)
    return np.rint(sums.astype(np.float32) * np.float32(1.0 / (fy * fx))).astype(np.uint8)


def _area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """(dst, k) source indices and float32 weights of each output pixel's footprint, in source order;
    unused taps have weight 0 (OpenCV's ``computeResizeAreaTab``)."""
    scale = src / dst
    taps: list[list[tuple[int, float]]] = []
    for d in range(dst):
        start = d * scale
        end = start + scale
        cell = min(scale, src - start)
        last = min(math.floor(end), src - 1)
        first = min(math.ceil(start), last)
        row = []
        if first - start > 1e-3:
            row.append((first - 1, (first - start) / cell))
        row.extend((i, 1.0 / cell) for i in range(first, last))
        if end - last > 1e-3:
            row.append((last, min(min(end - last, 1.0), cell) / cell))
        taps.append(row)
    width = max(len(row) for row in taps)
    index = np.zeros((dst, width), dtype=np.int64)
    weight = np.zeros((dst, width), dtype=np.float32)
    for d, row in enumerate(taps):
        for k, (i, w) in enumerate(row):
            index[d, k], weight[d, k] = i, w
    return index, weight


def _area_shrink(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fractional shrink: footprint-weighted means accumulated in float32 in OpenCV's order (each
    row across, then the rows down, tap by tap), so that results near .5 round as OpenCV's do."""
    data = pixels.astype(np.float32)
    x_index, x_weight = _area_taps(pixels.shape[1], width)
    rows = np.zeros((pixels.shape[0], width, pixels.shape[2]), dtype=np.float32)
    for k in range(x_index.shape[1]):
        rows += data[:, x_index[:, k]] * x_weight[None, :, k, None]
    y_index, y_weight = _area_taps(pixels.shape[0], height)
    out = np.zeros((height, width, pixels.shape[2]), dtype=np.float32)
    for k in range(y_index.shape[1]):
        out += rows[y_index[:, k]] * y_weight[:, k, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index: the first source index and the two fixed-point weights (sum 2048)."""
    scale = src / dst
    first = np.zeros(dst, dtype=np.int64)
    alphas = np.zeros((dst, 2), dtype=np.int64)
    for d in range(dst):
        s = math.floor(d * scale)
        f = np.float32((d + 1) - (s + 1) / scale)
        f = np.float32(0.0) if f <= 0 else np.float32(f - math.floor(f))
        if s < 0:
            s, f = 0, np.float32(0.0)
        if s >= src - 1:
            s, f = src - 1, np.float32(0.0)
        first[d] = s
        alphas[d] = (round(float((np.float32(1.0) - f) * _COEF_SCALE)), round(float(f * _COEF_SCALE)))
    return first, alphas


def _area_linear(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Enlarging: OpenCV's area-mode linear interpolation with 11-bit weights per axis."""
    src_h, src_w = pixels.shape[:2]
    x0, ax = _linear_taps(src_w, width)
    y0, ay = _linear_taps(src_h, height)
    data = pixels.astype(np.int64)
    x1 = np.minimum(x0 + 1, src_w - 1)
    rows = data[:, x0] * ax[None, :, 0, None] + data[:, x1] * ax[None, :, 1, None]
    y1 = np.minimum(y0 + 1, src_h - 1)
    # OpenCV's vertical pass for 8-bit output: each row sum drops 4 bits, is multiplied by its 16-bit
    # weight keeping the high half, and the two halves are summed and rounded by 2 bits.
    top = ((rows[y0] >> 4) * ay[:, 0, None, None]) >> 16
    bottom = ((rows[y1] >> 4) * ay[:, 1, None, None]) >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)
