"""A case's label image (the GT ``mask`` or a stored prediction) as NIfTI on its source file's grid.

The store holds every 3D case reoriented to LPS (:func:`tasks.volume.to_volume`), with the spacing
(z, y, x) and origin of the reoriented image and the source's index-to-world ``original_affine``.
Export rebuilds the LPS grid (spacing reversed to x, y, z, the stored origin, and the direction
``sitk.DICOMOrient`` gave: found by reorienting a tiny image with the source's direction cosines,
since the permutation does not depend on size), then reorients it back to the source's orientation
code. The file is written under a temporary name and renamed, and read back: its geometry must be
the source's, or the export fails naming the case.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tasks.locations import Location, as_location
from tasks.predictions import GT_LABELS, read_prediction
from tasks.storage_errors import writing
from tasks.store import StoredCase
from tasks.volume import CANONICAL, affine

# NIfTI stores its qform/sform in float32: the geometry read back agrees with float64 this well.
GEOMETRY_ATOL_MM = 1e-3
GEOMETRY_RTOL = 1e-5


class ExportError(ValueError):
    """A label image that cannot be exported; the message names the case and the problem."""


def _planar(meta: dict, shape: tuple[int, ...]) -> bool:
    """True for a case ingested from a 2D image: :func:`tasks.volume.to_volume` gives it one slice of
    1 mm at z = 0 and an identity z row and column in its affine (a one-slice volume with exactly
    that geometry is refused too, the safe side)."""
    matrix = np.asarray(meta["original_affine"], dtype=float)
    identity_z = np.array_equal(matrix[2], [0, 0, 1, 0]) and np.array_equal(matrix[:3, 2], [0, 0, 1])
    return shape[0] == 1 and identity_z and float(meta["spacing"][0]) == 1.0 and float(meta["origin"][2]) == 0.0


def source_image(labels: np.ndarray, meta: dict) -> sitk.Image:
    """``labels`` (z, y, x, on the stored LPS grid) as an ITK image on the source file's grid."""
    matrix = np.asarray(meta["original_affine"], dtype=float)
    direction = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
    cosines = [float(v) for v in direction.ravel()]
    probe = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    probe.SetDirection(cosines)
    canonical = sitk.GetImageFromArray(labels)
    canonical.SetSpacing([float(s) for s in reversed(meta["spacing"])])
    canonical.SetOrigin([float(o) for o in meta["origin"]])
    canonical.SetDirection(sitk.DICOMOrient(probe, CANONICAL).GetDirection())
    return sitk.DICOMOrient(canonical, sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(cosines))


def _label_volume(case: StoredCase, name: str) -> np.ndarray:
    if name == GT_LABELS:
        if "labels/mask/0" not in case.group:
            raise ExportError(f"{case.path}: the case has no GT mask")
        return case.group["labels/mask/0"][...]
    labels = read_prediction(case.path, name)
    if labels is None:
        raise ExportError(f"{case.path}: no complete label image {name!r}")
    return labels


def export_label_image(case_path: Location, name: str, out_file: Path) -> Path:
    """Write label image ``name`` of the case at ``case_path`` (``mask`` or a stored prediction) to
    ``out_file`` (.nii.gz) with the geometry of the case's source file; return ``out_file``.

    Raises ExportError for a 2D case, a label image that is not there, or a written geometry that
    differs from the source's; FileNotFoundError if no complete case is at ``case_path``;
    StorageError if the file cannot be written.
    """
    case = StoredCase(as_location(case_path))
    labels = _label_volume(case, name)
    if _planar(case.meta, labels.shape):
        raise ExportError(f"{case.path}: a 2D case; NIfTI export is for 3D volumes")
    image = source_image(labels, case.meta)
    out_file = Path(out_file)
    partial = out_file.with_name(f".partial-{uuid.uuid4().hex[:8]}-{out_file.name}")  # keeps the .nii.gz suffix
    try:
        with writing(out_file):
            out_file.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(image, str(partial), useCompression=True)
            written = sitk.ReadImage(str(partial))
            expected = np.asarray(case.meta["original_affine"], dtype=float)
            if not np.allclose(affine(written), expected, atol=GEOMETRY_ATOL_MM, rtol=GEOMETRY_RTOL):
                raise ExportError(
                    f"{case.path}: exported {name!r} has affine {np.round(affine(written), 4).tolist()}, "
                    f"the source's is {np.round(expected, 4).tolist()}"
                )
            os.replace(partial, out_file)
    finally:
        partial.unlink(missing_ok=True)
    return out_file
