"""The Zarr store: one OME-Zarr group per case, written whole under a staging name, then renamed.

Layout (OME-Zarr 0.5 on Zarr v3, so napari-ome-zarr opens a case)::

    <store>/<dataset>/<case>/image          (c, z, y, x), one slice per chunk
    <store>/<dataset>/<case>/labels/mask/0  (z, y, x) integer label map
    attrs["samatlas"]: spacing, origin, original affine, sha256s, channels, label map, intensity
                       window, complete=true (written last)
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from ome_zarr.format import FormatV05
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

from tasks.volume import Volume

AXES = [
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "millimeter"},
    {"name": "y", "type": "space", "unit": "millimeter"},
    {"name": "x", "type": "space", "unit": "millimeter"},
]
LABEL_AXES = AXES[1:]


def case_path(store: Path, dataset: str, case_id: str) -> Path:
    """Where a case lives in the store."""
    return Path(store) / dataset / case_id


def _write_arrays(group: zarr.Group, volume: Volume) -> None:
    c, z, y, x = volume.image.shape
    image = group.create_array(
        "image", shape=volume.image.shape, dtype=volume.image.dtype, chunks=(c, 1, y, x),
        dimension_names=("c", "z", "y", "x"),
    )
    image[...] = volume.image
    scale = [1.0, *volume.spacing]
    write_multiscales_metadata(
        group, [{"path": "image", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        fmt=FormatV05(), axes=AXES,
    )
    if volume.mask is None:
        return
    labels = group.create_group("labels")
    mask_group = labels.create_group("mask")
    mask = mask_group.create_array(
        "0", shape=volume.mask.shape, dtype=volume.mask.dtype, chunks=(1, y, x), dimension_names=("z", "y", "x"),
    )
    mask[...] = volume.mask
    write_multiscales_metadata(
        mask_group, [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(volume.spacing)}]}],
        fmt=FormatV05(), axes=LABEL_AXES,
    )
    write_label_metadata(labels, "mask", fmt=FormatV05())


def write_case(store: Path, dataset: str, case_id: str, volume: Volume, attrs: dict[str, Any]) -> Path:
    """Write a case whole: staging folder first, ``complete`` attribute last, then an atomic rename.

    A crash leaves only a ``.staging-*`` folder, never a half-written case; a re-ingest replaces the
    old case only once the new one is complete.
    """
    final = case_path(store, dataset, case_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".staging-{case_id}-{uuid.uuid4().hex[:8]}"
    try:
        group = zarr.open_group(str(staging), mode="w", zarr_format=3)
        _write_arrays(group, volume)
        meta = {
            "spacing": list(volume.spacing),
            "origin": list(volume.origin),
            "original_affine": volume.original_affine,
            "spacing_from_file": volume.spacing_from_file,
            **attrs,
        }
        group.attrs["samatlas"] = meta
        group.attrs["samatlas"] = {**meta, "complete": True}
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return final


def sweep_staging(store: Path, dataset: str) -> int:
    """Remove staging folders left by killed writers; return how many."""
    root = Path(store) / dataset
    leftovers = list(root.glob(".staging-*")) if root.exists() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


class StoredCase:
    """Read access to one complete case: metadata, one image slice, one mask slice."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r")
        self.meta: dict[str, Any] = dict(self.group.attrs.get("samatlas", {}))
        if not self.meta.get("complete"):
            raise FileNotFoundError(f"{self.path}: not a complete samatlas case")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing (z, y, x) in mm."""
        return tuple(self.meta["spacing"])

    def image_slice(self, z: int) -> np.ndarray:
        """Channels of slice ``z`` as ``(c, y, x)``."""
        return self.group["image"][:, z]

    def mask_slice(self, z: int) -> np.ndarray:
        """The label map of slice ``z`` as ``(y, x)``."""
        return self.group["labels/mask/0"][z]


def is_complete(path: Path) -> bool:
    """True if a complete case lives at ``path``."""
    try:
        StoredCase(path)
    except (FileNotFoundError, KeyError, ValueError):
        return False
    return True
