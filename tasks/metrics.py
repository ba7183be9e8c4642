"""Overlap and boundary metrics of one predicted mask against its reference, under a named convention.

Definitions (G = reference, S = prediction, both binary arrays of the same shape, 2D or 3D):

* Dice = 2|G∩S| / (|G|+|S|); IoU = |G∩S| / |G∪S|, the same under every convention.
* NSD at tolerance τ (Nikolov et al. 2021): the share of both boundaries that lies within τ of the
  other boundary; a distance equal to τ counts as within.
* HD95: a 95th percentile of the surface distances, symmetrised in one of two ways.

The boundary, the tolerance's unit, a Dice gate on NSD and the HD95 symmetrisation differ between
the scorers that produced published numbers (protocols.md §2.4, §5, §7.5), so they are fixed by a
:class:`MetricConvention`, and every ``Scores`` names the convention that produced it:

``surface="voxels"`` (samatlas' original convention, MONAI ``compute_surface_dice`` with
``use_subvoxels=False``)
    ∂X is the voxels of X removed by one binary erosion with face connectivity (outside the array
    counts as background). Every boundary voxel counts once. Distances run from each voxel of ∂S
    to the nearest voxel of ∂G and back, by the exact Euclidean distance transform. HD95 uses
    ``numpy.percentile`` (linear interpolation).

``surface="surfels"`` (DeepMind ``surface-distance``, which MedSAM's ``SurfaceDice.py`` and the
CVPR 2024/2025 scorers copy)
    The boundary is made of the 2x2 (2D) or 2x2x2 (3D) neighbourhoods that are neither all inside
    nor all outside the mask, placed at voxel corners; each is weighted by its contour length or
    surface area for the given spacing (marching squares/cubes). Distances run between those
    elements; NSD is the area-weighted share, HD95 the area-weighted percentile (the first distance
    whose cumulative area share reaches 95 %), exactly as ``compute_surface_dice_at_tolerance`` and
    ``compute_robust_hausdorff``.

``lift_2d=True`` (surfels only; the CVPR 2024/2025 scorers' 2D cases, ``compute_metrics.py``:
``np.expand_dims(gts, -1)`` with spacing [1, 1, 1]) scores a 2D mask as a one-slice 3D volume, so the
mask's flat top and bottom faces count as surface too. Those faces are where the masks overlap
(distance 0) or not, so this NSD rewards overlap and is far from the 2D contour NSD (0.13 higher
on average on random 80x80 masks).

``hd95="max-directed"`` takes the larger of the two directed percentiles (DeepMind, MONAI, Metrics
Reloaded); ``hd95="pooled"`` takes the percentile of both directions' distances together (MedPy,
seg-metrics). ``nsd_gate_dice``: NSD is set to 0 unless Dice > the gate (the CVPR scorers' 0.2).

Units: with ``nsd_unit="mm"`` spacing is in mm and in ARRAY AXIS ORDER: (sz, sy, sx) for a (z, y, x)
volume, (sy, sx) for a slice of it (SimpleITK's ``GetSpacing()`` is (x, y, z) and must be reversed
before it reaches here). With ``nsd_unit="px"`` the spacing is ignored and every axis counts 1, as
the CVPR scorers do for 2D images, so τ is in pixels and HD95 is in pixels too.

Empty masks, the same under every convention: the worst value rather than NaN or inf (which
surface-distance, MONAI and the CVPR scorers return), as Metrics Reloaded advises, so that a
false-positive-only or missed object cannot silently vanish from an average:

* both empty: Dice 1, IoU 1, NSD 1, HD95 0 (the prediction agrees that nothing is there; the Dice
  gate passes since Dice is 1);
* exactly one empty: Dice 0, IoU 0, NSD 0, HD95 = the diagonal of the array's extent in the
  convention's unit, sqrt(Σ (n_i·s_i)²), the largest distance the image can hold.

No metric returns NaN or inf.

Each boundary is found on its mask's bounding box padded by one voxel, and distances come from an
exact feature transform over a box holding both boundaries: they are the same as on the whole
array, while a small object in a large image stays cheap. ``score`` computes them once for NSD and
HD95 together; a :class:`Reference` also keeps the reference's side (its boundary and its feature
transform) for the many predictions scored against one object, which halves the transforms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.ndimage import correlate, distance_transform_edt

# The marching squares/cubes length and area of each 2x2 / 2x2x2 neighbourhood code, for a given
# spacing, come from DeepMind's own tables: they are the definition of a surfel, and a triangulation
# derived by hand could resolve the ambiguous cube configurations differently. Only the tables are
# used: the package's ``compute_surface_distances`` calls ``scipy.ndimage.filters`` (deprecated,
# removed in SciPy 2) and ``np.Inf`` (removed in NumPy 2) for empty masks, and its 0.1 release is
# the only one.
from surface_distance.lookup_tables import (
    ENCODE_NEIGHBOURHOOD_2D_KERNEL,
    ENCODE_NEIGHBOURHOOD_3D_KERNEL,
    create_table_neighbour_code_to_contour_length,
    create_table_neighbour_code_to_surface_area,
)

from tasks.boxes import bounding_box

Surface = Literal["voxels", "surfels"]
Unit = Literal["mm", "px"]
HD95Mode = Literal["max-directed", "pooled"]


@dataclass(frozen=True)
class MetricConvention:
    """How NSD and HD95 are computed; see the module docstring for each field's meaning."""

    surface: Surface = "voxels"
    nsd_tolerance: float = 2.0
    nsd_unit: Unit = "mm"
    nsd_gate_dice: float | None = None
    hd95: HD95Mode = "max-directed"
    lift_2d: bool = False

    def __post_init__(self) -> None:
        if self.surface not in ("voxels", "surfels"):
            raise ValueError(f"surface must be 'voxels' or 'surfels', got {self.surface!r}")
        if self.nsd_unit not in ("mm", "px"):
            raise ValueError(f"nsd_unit must be 'mm' or 'px', got {self.nsd_unit!r}")
        if self.hd95 not in ("max-directed", "pooled"):
            raise ValueError(f"hd95 must be 'max-directed' or 'pooled', got {self.hd95!r}")
        if not (math.isfinite(self.nsd_tolerance) and self.nsd_tolerance >= 0):
            raise ValueError(f"nsd_tolerance must be finite and >= 0, got {self.nsd_tolerance}")
        if self.nsd_gate_dice is not None and not 0 <= self.nsd_gate_dice < 1:
            raise ValueError(f"nsd_gate_dice must be in [0, 1) or None, got {self.nsd_gate_dice}")
        if self.lift_2d and self.surface != "surfels":
            raise ValueError("lift_2d applies to surfels only")

    @property
    def name(self) -> str:
        """A stable short name, e.g. ``surfels-2mm-gate0.2-max``, ``voxels-2mm-nogate-max`` or, lifted,
        ``surfels-slab-2px-gate0.2-max``."""
        gate = "nogate" if self.nsd_gate_dice is None else f"gate{self.nsd_gate_dice:g}"
        hd95 = "max" if self.hd95 == "max-directed" else "pooled"
        surface = "surfels-slab" if self.lift_2d else self.surface
        return f"{surface}-{self.nsd_tolerance:g}{self.nsd_unit}-{gate}-{hd95}"

    def to_params(self) -> dict[str, str | float | None]:
        """The fields as plain JSON values, for a spec or a results row."""
        return {
            "surface": self.surface, "nsd_tolerance": float(self.nsd_tolerance), "nsd_unit": self.nsd_unit,
            "nsd_gate_dice": None if self.nsd_gate_dice is None else float(self.nsd_gate_dice), "hd95": self.hd95,
            "lift_2d": self.lift_2d,
        }


# samatlas' convention before conventions were named: kept as the default so old rows stay comparable.
SAMATLAS_VOXELS = MetricConvention("voxels", 2.0, "mm", None, "max-directed")
# CVPR 2024 "MedSAM on Laptop" / CVPR 2025 interactive 3D scorer (LiteMedSAM:evaluation/compute_metrics.py):
# surface-distance NSD at 2 mm on 3D cases, at 2 px on 2D images (a one-slice volume at spacing 1),
# set to 0 unless DSC > 0.2. The 2D contour variant at 2 px is kept beside it as "surfels-2d-2px".
CVPR24_3D = MetricConvention("surfels", 2.0, "mm", 0.2, "max-directed")
CVPR24_2D = MetricConvention("surfels", 2.0, "px", 0.2, "max-directed", lift_2d=True)
SURFELS_2D_2PX = MetricConvention("surfels", 2.0, "px", 0.2, "max-directed")
CVPR25_3D = CVPR24_3D
CVPR25_2D = CVPR24_2D
# MedSAM paper (Nat. Commun. 2024, utils/SurfaceDice.py): surface-distance NSD at 2 mm, always computed.
MEDSAM_PAPER = MetricConvention("surfels", 2.0, "mm", None, "max-directed")
DEFAULT_CONVENTION = SAMATLAS_VOXELS

PRESETS: dict[str, MetricConvention] = {
    "samatlas-voxels": SAMATLAS_VOXELS,
    "cvpr24-3d": CVPR24_3D, "cvpr24-2d": CVPR24_2D, "cvpr25-3d": CVPR25_3D, "cvpr25-2d": CVPR25_2D,
    "medsam-paper": MEDSAM_PAPER, "surfels-2d-2px": SURFELS_2D_2PX,
}


def convention(name: str) -> MetricConvention:
    """The preset called ``name``, refusing an unknown one with the list of presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown metric convention {name!r}; choose from {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class Scores:
    """The four metrics of one (prediction, reference) pair, and the name of the convention used."""

    dice: float
    iou: float
    nsd: float
    hd95: float
    convention: str = DEFAULT_CONVENTION.name


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice similarity coefficient 2|G∩S| / (|G|+|S|); 1 when both masks are empty."""
    pred, gt = _masks(pred, gt)
    return _dice_iou(pred, gt)[0]


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union |G∩S| / |G∪S| (Jaccard); 1 when both masks are empty."""
    pred, gt = _masks(pred, gt)
    return _dice_iou(pred, gt)[1]


def nsd(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], convention: MetricConvention = DEFAULT_CONVENTION
) -> float:
    """Normalised surface Dice under ``convention`` (gate included)."""
    return score(pred, gt, spacing, convention).nsd


def hd95(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], convention: MetricConvention = DEFAULT_CONVENTION
) -> float:
    """95th-percentile Hausdorff distance under ``convention``, in its unit (mm or px)."""
    return score(pred, gt, spacing, convention).hd95


def score(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], convention: MetricConvention = DEFAULT_CONVENTION
) -> Scores:
    """All four metrics at once, sharing the boundaries and distance transforms between NSD and HD95."""
    return Reference(gt, spacing).score(pred, convention)


class Reference:
    """A reference mask prepared once to score many predictions against it, under any convention.

    A protocol's steps and the protocols run on one object all score against the same reference, so
    what depends on it alone is kept: its voxel count, its boundary per kind of surface, and the
    feature transform of that boundary (the index of the nearest boundary element of every voxel)
    over a box that grows to cover each prediction's boundary. A transform over any box holding all
    the reference's boundary elements gives the exact distance of every index in it, so scores are
    those of :func:`score` with nothing shared (a test holds them equal).
    """

    def __init__(self, gt: np.ndarray, spacing: Sequence[float]) -> None:
        self.mask = _mask(gt)
        self.spacing = _spacing(spacing, self.mask.ndim)
        self.voxels = int(np.count_nonzero(self.mask))
        self._boundaries: dict[tuple[Surface, tuple[float, ...]], _Boundary] = {}
        self._features: dict[tuple[Surface, tuple[float, ...]], _FeatureMap] = {}

    def score(self, pred: np.ndarray, convention: MetricConvention = DEFAULT_CONVENTION) -> Scores:
        """The four metrics of ``pred`` against this reference under ``convention``."""
        pred, gt = _masks(pred, self.mask)
        sizes = (1.0,) * pred.ndim if convention.nsd_unit == "px" else self.spacing
        dice_value, iou_value = _dice_iou(pred, gt, self.voxels)
        name = convention.name
        predicted = bool(pred.any())
        if not (self.voxels and predicted):
            if predicted == bool(self.voxels):
                return Scores(dice=1.0, iou=1.0, nsd=1.0, hd95=0.0, convention=name)
            return Scores(dice=0.0, iou=0.0, nsd=0.0, hd95=_diagonal(pred.shape, sizes), convention=name)
        lifted = convention.lift_2d and pred.ndim == 2
        if lifted:
            pred, sizes = pred[..., None], (*sizes, 1.0)
        own = _boundary(pred, convention.surface, sizes)
        ref = self._boundary(convention.surface, sizes, lifted)
        needed = _enclosing(own.frame, ref.frame)
        pred_to_gt = self._feature_map(convention.surface, sizes, needed).distances(own.points, sizes)
        gt_to_pred = _FeatureMap.of(own, needed, sizes).distances(ref.points, sizes)
        tau = convention.nsd_tolerance
        gated = convention.nsd_gate_dice is not None and dice_value <= convention.nsd_gate_dice
        nsd_value = 0.0 if gated else _nsd(pred_to_gt, gt_to_pred, own.areas, ref.areas, tau)
        return Scores(
            dice=dice_value, iou=iou_value, nsd=nsd_value,
            hd95=_hd95(pred_to_gt, gt_to_pred, own.areas, ref.areas, convention.hd95), convention=name,
        )

    def _boundary(self, surface: Surface, sizes: tuple[float, ...], lifted: bool) -> _Boundary:
        """The reference's boundary of this kind at these sizes (the lifted 2D mask's for a slab)."""
        key = (surface, sizes)
        if key not in self._boundaries:
            self._boundaries[key] = _boundary(self.mask[..., None] if lifted else self.mask, surface, sizes)
        return self._boundaries[key]

    def _feature_map(self, surface: Surface, sizes: tuple[float, ...], needed: tuple[slice, ...]) -> _FeatureMap:
        """The feature transform of the reference's boundary over a box holding ``needed``, grown if not."""
        key = (surface, sizes)
        held = self._features.get(key)
        if held is None or not held.covers(needed):
            box = needed if held is None else _enclosing(held.box, needed)
            held = self._features[key] = _FeatureMap.of(self._boundaries[key], box, sizes)
        return held


@dataclass(frozen=True)
class _Boundary:
    """A mask's boundary elements: the box they were found in and where each lies.

    ``frame`` is in global indices (the voxel grid for voxels, the corner grid for surfels, whose
    corner ``i`` is the low corner of voxel ``i``); ``inside`` marks the elements within it,
    ``points`` holds their global indices in raster order, ``areas`` their length or area (surfels).
    """

    frame: tuple[slice, ...]
    inside: np.ndarray
    points: np.ndarray
    areas: np.ndarray | None


def _boundary(mask: np.ndarray, surface: Surface, sizes: tuple[float, ...]) -> _Boundary:
    """The boundary elements of a non-empty mask (see the module docstring), found on its padded box.

    Voxels: one binary erosion of the box, padded by one voxel (outside the array counts as
    background either way, so the edge is that of the whole array). Surfels: each corner gets the
    code of its 2^n neighbourhood; a code that is neither 0 nor all-inside is an element. A 2^n
    correlation puts each corner's code at its high-side voxel; one more background layer on the
    high side gives the corners past the last voxel too (the low side reads the zero ``cval``).
    """
    box = _padded_box(mask)
    offset = np.array([b.start for b in box])
    if surface == "voxels":
        crop = mask[box]
        inside = crop & ~_eroded(crop)
        return _Boundary(box, inside, np.argwhere(inside) + offset, None)
    crop = np.pad(mask[box], [(0, 1)] * mask.ndim).astype(np.uint8)
    kernel = ENCODE_NEIGHBOURHOOD_2D_KERNEL if mask.ndim == 2 else ENCODE_NEIGHBOURHOOD_3D_KERNEL
    codes = correlate(crop, kernel, mode="constant", cval=0)
    inside = (codes != 0) & (codes != int(kernel.sum()))
    frame = tuple(slice(b.start, b.stop + 1) for b in box)
    return _Boundary(frame, inside, np.argwhere(inside) + offset, _surfel_table(sizes)[codes[inside]])


def _eroded(mask: np.ndarray) -> np.ndarray:
    """One binary erosion with face connectivity, outside the array counting as background.

    The same as ``scipy.ndimage.binary_erosion(mask)`` (a test holds them equal), written as the AND
    of the mask's 2n face-shifted views because SciPy's general structuring-element loop costs about
    0.1 ms a call on an object's box, which, per scored mask, was a tenth of the metrics' time.
    """
    padded = np.pad(mask, 1)
    core = [slice(1, -1)] * mask.ndim
    out = mask.copy()
    for axis in range(mask.ndim):
        for shifted in (slice(0, -2), slice(2, None)):
            view = list(core)
            view[axis] = shifted
            out &= padded[tuple(view)]
    return out


@dataclass(frozen=True)
class _FeatureMap:
    """For every index of ``box`` (global), the local index of the nearest element of one boundary.

    Built with SciPy's exact Euclidean feature transform; distances are then computed only at the
    points asked for, exactly as ``distance_transform_edt`` computes them from the same transform
    (offsets as float64 times the spacing, squared, summed axis by axis, square root), so they are
    bitwise its distances while the whole-box float distance map is never made.
    """

    box: tuple[slice, ...]
    features: np.ndarray  # (ndim, *box shape) int32

    @classmethod
    def of(cls, boundary: _Boundary, box: tuple[slice, ...], sizes: tuple[float, ...]) -> _FeatureMap:
        """The transform of ``boundary`` over ``box`` (which must hold the boundary's frame) at ``sizes``."""
        background = np.ones(tuple(b.stop - b.start for b in box), dtype=bool)
        within = tuple(slice(f.start - b.start, f.stop - b.start) for f, b in zip(boundary.frame, box, strict=True))
        background[within] = ~boundary.inside
        features = distance_transform_edt(background, sampling=sizes, return_distances=False, return_indices=True)
        return cls(box, features)

    def covers(self, box: tuple[slice, ...]) -> bool:
        """Whether ``box`` lies within this map's box."""
        return all(h.start <= b.start and b.stop <= h.stop for h, b in zip(self.box, box, strict=True))

    def distances(self, points: np.ndarray, sizes: tuple[float, ...]) -> np.ndarray:
        """The distance of each of ``points`` (global indices, inside the box) to the nearest element."""
        local = points - np.array([b.start for b in self.box])
        flat = np.ravel_multi_index(tuple(local.T), self.features.shape[1:])
        nearest = self.features.reshape(len(sizes), -1).take(flat, axis=1)  # 4 µs; [:, flat] took 26
        total = np.zeros(len(points))
        for axis, size in enumerate(sizes):
            offset = (nearest[axis] - local[:, axis]).astype(np.float64) * size
            total += offset * offset
        return np.sqrt(total)


def _masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean arrays (non-zero is foreground), refusing different shapes."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    return _mask(pred), gt


def _mask(mask: np.ndarray) -> np.ndarray:
    """A mask as a boolean array (non-zero is foreground), refusing what is neither 2D nor 3D."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim not in (2, 3):
        raise ValueError(f"masks must be 2D or 3D, got {mask.ndim} dimensions")
    return mask


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """The voxel size per array axis in mm, refusing a wrong length or a non-positive size."""
    sizes = tuple(float(s) for s in spacing)
    if len(sizes) != ndim:
        raise ValueError(
            f"spacing must give one size per array axis in array order ({ndim} for these masks), got {len(sizes)}"
        )
    if not all(math.isfinite(s) and s > 0 for s in sizes):
        raise ValueError(f"spacing must be finite and positive, got {sizes}")
    return sizes


def _dice_iou(pred: np.ndarray, gt: np.ndarray, n_gt: int | None = None) -> tuple[float, float]:
    """Dice and IoU from the voxel counts, both 1 when both masks are empty (``n_gt``: gt's count, if known)."""
    n_pred = int(np.count_nonzero(pred))
    n_gt = int(np.count_nonzero(gt)) if n_gt is None else n_gt
    if n_pred + n_gt == 0:
        return 1.0, 1.0
    overlap = int(np.count_nonzero(pred & gt))
    return 2.0 * overlap / (n_pred + n_gt), overlap / (n_pred + n_gt - overlap)


def _diagonal(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """The physical diagonal of the whole array: the worst HD95 an image allows."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))


def _padded_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of a non-empty mask, padded by one voxel within the array."""
    return tuple(
        slice(max(b.start - 1, 0), min(b.stop + 1, length)) for b, length in zip(bounding_box(mask), mask.shape, strict=True)
    )


def _enclosing(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    """The smallest box holding both boxes."""
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True))


@lru_cache(maxsize=32)
def _surfel_table(spacing: tuple[float, ...]) -> np.ndarray:
    """Length (2D) or area (3D) of the surface element of every neighbourhood code at this spacing."""
    if len(spacing) == 2:
        return create_table_neighbour_code_to_contour_length(spacing)
    return create_table_neighbour_code_to_surface_area(spacing)


def _nsd(
    pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, area_pred: np.ndarray | None, area_gt: np.ndarray | None,
    tolerance: float,
) -> float:
    """The (area-weighted, for surfels) share of both boundaries within the tolerance of the other."""
    if area_pred is None or area_gt is None:
        within = np.count_nonzero(pred_to_gt <= tolerance) + np.count_nonzero(gt_to_pred <= tolerance)
        return within / (pred_to_gt.size + gt_to_pred.size)
    within = area_pred[pred_to_gt <= tolerance].sum() + area_gt[gt_to_pred <= tolerance].sum()
    return float(within / (area_pred.sum() + area_gt.sum()))


def _percentile(values: np.ndarray, percent: float) -> float:
    """``numpy.percentile(values, percent)`` of a non-empty 1D array (its default, linear method), bitwise.

    Written out because NumPy's general path (any axis, any method, NaN checks) costs about 25 µs a
    call against 2-8 µs here, and HD95 takes two a score: 8000 in a ``bench/pipeline.py`` run, 4 % of
    its time. The same steps as NumPy's: the virtual index (n - 1)·q, the two values around it from a
    partial sort, and NumPy's lerp (from the upper value when the weight is at least 0.5). A test
    holds it equal to ``numpy.percentile`` on thousands of arrays.
    """
    virtual = (values.size - 1) * (percent / 100)
    if virtual >= values.size - 1:
        return float(values.max())
    below = math.floor(virtual)
    weight = virtual - below
    around = np.partition(values, (below, below + 1))
    low, high = float(around[below]), float(around[below + 1])
    step = high - low
    return high - step * (1 - weight) if weight >= 0.5 else low + step * weight


def _weighted_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """The first sorted distance whose cumulative area share reaches ``percent`` (surface-distance's rule)."""
    order = np.argsort(distances, kind="stable")
    cumulative = np.cumsum(areas[order]) / areas.sum()
    index = min(int(np.searchsorted(cumulative, percent / 100.0)), distances.size - 1)
    return float(distances[order][index])


def _hd95(
    pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, area_pred: np.ndarray | None, area_gt: np.ndarray | None,
    mode: HD95Mode,
) -> float:
    """The 95th percentile of the surface distances, per direction then the larger, or pooled."""
    if area_pred is None or area_gt is None:
        if mode == "pooled":
            return _percentile(np.concatenate([pred_to_gt, gt_to_pred]), 95)
        return max(_percentile(pred_to_gt, 95), _percentile(gt_to_pred, 95))
    if mode == "pooled":
        return _weighted_percentile(
            np.concatenate([pred_to_gt, gt_to_pred]), np.concatenate([area_pred, area_gt]), 95
        )
    return max(_weighted_percentile(pred_to_gt, area_pred, 95), _weighted_percentile(gt_to_pred, area_gt, 95))
