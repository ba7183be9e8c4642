"""Predicted label volumes of volumetric runs, stored beside the GT as NGFF label images of the case.

Layout (see the store's module docstring)::

    <case>/labels/<name>/0   (z, y, x) uint8 (uint16 when a label exceeds 255), one slice per chunk
    <case>/labels/<name>     attrs: the OME multiscales/image-label metadata of ``labels/mask`` and
                             attrs["samatlas"] = PredictionInfo fields + complete=true (written last)
    <case>/labels            attrs["ome"]["labels"] lists ``mask`` and every stored prediction

``name`` is :func:`prediction_name`. A store merges into an existing complete image of the same
name: a unit may predict only some of a case's labels. Each voxel holds the highest label predicted
there, which is what painting every label in ascending order gives (a later label overwrites an
earlier one, as the CVPR writer does); the voxels of a re-predicted label are cleared first. Where
a higher label covered a lower one, the lower one's voxels there are not kept, so clearing the
higher label later leaves them 0.

Writes are atomic as the case's are (:func:`tasks.store.write_target`): a local store writes a
staging group ``labels/.staging-<name>-<hex>`` and renames it into place; an object store unmakes
the old group (its ``zarr.json`` first) and writes the new one's ``zarr.json``, holding
``complete``, last. A killed writer leaves a staging group (local) or an incomplete group (object
store): no reader trusts either, and the next store of the name removes them.

Two writers storing into the same case at once (the labels list and a merge are read-modify-write)
can lose one's update: the evaluate side writes a case's predictions from one unit at a time.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tasks.locations import Location, as_location, is_remote, join
from tasks.storage_errors import StorageError, storage_error, writing
from tasks.store import StoredCase, label_image_attrs, write_label_array, write_target

STAGING_PREFIX = ".staging-"  # the store's staging folders (tasks.store._staged): never a label image
GT_LABELS = "mask"


def prediction_name(model: str, model_sha256: str, protocol: str, spec_id: str, step: int) -> str:
    """The label image name of one step of a (model, protocol spec) on a case."""
    return f"{model}.{model_sha256[:8]}-{protocol}.{spec_id[:8]}-s{step}"


@dataclass(frozen=True)
class PredictionInfo:
    """What a stored prediction is: the run that made it and the labels it holds (its samatlas attrs)."""

    model: str
    model_sha256: str
    protocol: str
    spec_id: str
    spec_label: str
    step: int
    labels: tuple[int, ...]  # the label values painted (stored: every one the image holds)
    run_id: str

    @property
    def name(self) -> str:
        """The label image name (:func:`prediction_name`)."""
        return prediction_name(self.model, self.model_sha256, self.protocol, self.spec_id, self.step)


def _trusted(name: str) -> bool:
    """False for names no reader may open as a prediction: staging groups, the GT, paths."""
    return bool(name) and name != GT_LABELS and not name.startswith(STAGING_PREFIX) and "/" not in name


def _open_prediction(case_path: Location, name: str) -> tuple[zarr.Group, dict[str, Any]] | None:
    """The label group ``name`` and its samatlas attrs, if it is a complete stored prediction."""
    if not _trusted(name):
        return None
    try:
        group = zarr.open_group(str(join(as_location(case_path), "labels", name)), mode="r")
    except (FileNotFoundError, KeyError, ValueError):
        return None
    meta = dict(group.attrs.get("samatlas", {}))
    return (group, meta) if meta.get("complete") else None


def _info(meta: Mapping[str, Any]) -> PredictionInfo:
    return PredictionInfo(
        model=meta["model"], model_sha256=meta["model_sha256"], protocol=meta["protocol"],
        spec_id=meta["spec_id"], spec_label=meta["spec_label"], step=int(meta["step"]),
        labels=tuple(int(v) for v in meta["labels"]), run_id=meta["run_id"],
    )


def prediction_info(case_path: Location, name: str) -> PredictionInfo | None:
    """The info of the complete prediction ``name`` of a case, or None if there is none."""
    opened = _open_prediction(case_path, name)
    return None if opened is None else _info(opened[1])


def read_prediction(case_path: Location, name: str) -> np.ndarray | None:
    """The (z, y, x) label volume of the complete prediction ``name``, or None if there is none."""
    opened = _open_prediction(case_path, name)
    return None if opened is None else opened[0]["0"][...]


def list_predictions(case_path: Location) -> list[str]:
    """The names of a case's complete stored predictions, sorted (never a staging group, never ``mask``)."""
    try:
        labels = zarr.open_group(str(join(as_location(case_path), "labels")), mode="r")
        names = list(labels.group_keys())
    except (FileNotFoundError, KeyError, ValueError):
        return []
    return sorted(n for n in names if _open_prediction(case_path, n) is not None)


def paint(image: np.ndarray, mask: np.ndarray, label: int) -> None:
    """Paint ``label`` into the label map ``image`` where ``mask`` is set, unless a higher label is
    there: the rule every stored prediction follows where two objects' masks overlap."""
    image[mask & (image < label)] = label


def _painted(grid: tuple[int, ...], masks: Mapping[int, np.ndarray]) -> np.ndarray:
    """One label map of ``masks``, a higher label winning where two overlap."""
    image = np.zeros(grid, np.uint8 if max(masks) < 256 else np.uint16)
    for label in masks:
        paint(image, masks[label], label)
    return image


def _merged(old: np.ndarray | None, label_map: np.ndarray, painted: Sequence[int]) -> np.ndarray:
    """``old`` with the ``painted`` labels cleared, then ``label_map`` laid over it, the higher label
    winning where an old label and a new one meet."""
    if old is None:
        return label_map
    top = max(int(old.max(initial=0)), int(label_map.max(initial=0)))
    image = old.astype(np.uint8 if top < 256 else np.uint16)
    image[np.isin(image, list(painted))] = 0
    return np.maximum(image, label_map.astype(image.dtype))


def _checked_masks(case_path: Location, grid: tuple[int, ...], masks: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """The masks as bool arrays, after checking their labels (1..65535) and shapes (the case's grid)."""
    if not masks:
        raise ValueError(f"{case_path}: no masks to store")
    checked = {}
    for label, mask in masks.items():
        if not 0 < int(label) < 65536:
            raise ValueError(f"{case_path}: label {label} is not in 1..65535")
        array = np.asarray(mask, dtype=bool)
        if array.shape != grid:
            raise ValueError(f"{case_path}: mask of label {label} has shape {array.shape}, the case's grid is {grid}")
        checked[int(label)] = array
    return checked


def _ome_attrs(spacing: tuple[float, float, float], name: str) -> dict[str, Any]:
    """The OME attributes of ``labels/mask``, its multiscale named for the label image ``name``."""
    attrs = label_image_attrs(spacing)
    for multiscale in attrs["ome"]["multiscales"]:
        multiscale["name"] = f"/labels/{name}"
    return attrs


def _remove_leftovers(labels_path: Path, name: str) -> None:
    """Delete staging groups of ``name`` that killed writers left under ``labels``."""
    pattern = re.compile(rf"{re.escape(STAGING_PREFIX + name)}-[0-9a-f]{{8}}")
    for path in labels_path.glob(f"{STAGING_PREFIX}*"):
        if pattern.fullmatch(path.name):
            shutil.rmtree(path)


def _add_to_labels_list(labels_path: Location, name: str) -> None:
    """Append ``name`` to the ``labels`` group's NGFF list (created if the case has none), keeping the rest."""
    from ome_zarr.format import FormatV05  # here, not at the top: see tasks/store.py's _write_arrays

    labels = zarr.open_group(str(labels_path), mode="a", zarr_format=3)
    ome = dict(labels.attrs.get("ome", {}))
    listed = list(ome.get("labels", []))
    if name in listed and ome.get("version"):
        return
    labels.attrs["ome"] = {**ome, "version": ome.get("version", FormatV05().version),
                           "labels": listed if name in listed else [*listed, name]}


@contextmanager
def _storage_errors(path: Location) -> Iterator[None]:
    """OSErrors of writing the store as StorageErrors about ``path`` (on an object store, every one)."""
    if not is_remote(path):
        with writing(path):
            yield
        return
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise storage_error(path, exc) from exc


def store_prediction(case_path: Location, info: PredictionInfo, masks: Mapping[int, np.ndarray]) -> str:
    """Store ``masks`` (label value -> (z, y, x) bool on the case's grid) as the label image
    ``info.name`` of the complete case at ``case_path``, merged into a complete image of that name;
    return the name (see :func:`store_label_map`).

    Raises FileNotFoundError if no complete case is at ``case_path``, ValueError for masks off its
    grid, StorageError if the store cannot be written.
    """
    case_path = as_location(case_path)
    grid = tuple(StoredCase(case_path).group["image"].shape[1:])
    masks = _checked_masks(case_path, grid, masks)
    return store_label_map(case_path, info, _painted(grid, masks), sorted(masks))


def store_label_map(case_path: Location, info: PredictionInfo, label_map: np.ndarray, painted: Sequence[int]) -> str:
    """Store ``label_map`` ((z, y, x) integers on the case's grid, holding the ``painted`` labels and 0
    elsewhere) as the label image ``info.name``, merged into a complete image of that name: the voxels
    of the painted labels are cleared there first. A volumetric unit paints all its objects of one
    (spec, step) into one map, so storing never holds more than two label maps.

    The stored info's ``labels`` are every label the image then holds (the earlier ones and the
    painted ones), whatever ``info.labels`` says.
    """
    case_path = as_location(case_path)
    case = StoredCase(case_path)
    grid = tuple(case.group["image"].shape[1:])
    if tuple(label_map.shape) != grid:
        raise ValueError(f"{case_path}: label map of shape {tuple(label_map.shape)}, the case's grid is {grid}")
    if not painted or not all(0 < int(v) < 65536 for v in painted):
        raise ValueError(f"{case_path}: the painted labels {list(painted)} must be 1..65535, at least one")
    name = info.name
    old_info = prediction_info(case_path, name)
    image = _merged(read_prediction(case_path, name) if old_info else None, label_map, painted)
    labels = sorted(set(old_info.labels if old_info else ()) | {int(v) for v in painted})
    meta = {**asdict(replace(info, labels=tuple(labels))), "labels": labels, "complete": True}
    labels_path = join(case_path, "labels")
    with _storage_errors(labels_path):
        if not is_remote(labels_path):
            Path(labels_path).mkdir(exist_ok=True)
            _remove_leftovers(Path(labels_path), name)
        with write_target(join(labels_path, name)) as target:
            group = zarr.open_group(str(target), mode="w", zarr_format=3)
            write_label_array(group, image)
            group.attrs.update({**_ome_attrs(case.spacing, name), "samatlas": meta})  # one write, last
        _add_to_labels_list(labels_path, name)
    return name
