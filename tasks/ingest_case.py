"""Ingest one case: read, validate, reorient, write to Zarr, and describe its objects.

Any problem with a case becomes a quarantine record with a reason naming the file; nothing of a
failed case reaches the store (it is written under a staging name and renamed only when complete).

A case's sources are its files (images, label and ``more``: BUSI's extra ``_mask_N`` files, DRIVE's
FOV mask, CHAOS's label slices) and the data its ``extra`` holds (SIIM's run-length rows from a
shared CSV). All of it is checksummed, so a change to any of it re-ingests the case.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np

from records.cards import CaseFiles, DatasetCard, Subset
from records.rows import CaseRow, ObjectRow, VolumeObjectRow
from tasks.fetch import sha256_file
from tasks.intensity import window
from tasks.locations import Location, as_location
from tasks.objects import slice_objects
from tasks.storage_errors import StorageError
from tasks.store import StoredCase, case_path, is_complete, marked_complete, write_case, write_small_case
from tasks.volume import CaseError, check_finite, check_label_values, check_same_grid, to_volume
from tasks.volume_objects import volume_objects


@dataclass(frozen=True)
class CaseOutcome:
    """The ``cases``, ``objects`` and ``volume_objects`` rows of one ingested (or quarantined) case;
    only 3D datasets' cases have ``volume_objects`` rows."""

    case: CaseRow
    objects: tuple[ObjectRow, ...] = ()
    volume_objects: tuple[VolumeObjectRow, ...] = ()

    @property
    def ok(self) -> bool:
        """True unless the case was quarantined."""
        return self.case.ok


def source_names(case: CaseFiles) -> list[str]:
    """What the case is made of: every source file, then ``extra:<keys>`` for data in ``extra``."""
    names = [str(p) for p in case.files]
    return names + ([f"extra:{','.join(sorted(case.extra))}"] if case.extra else [])


def source_checksums(case: CaseFiles) -> list[str]:
    """sha256 of each source (missing files hash to ``missing``), in the order of :func:`source_names`."""
    sums = [sha256_file(p) if p.is_file() else "missing" for p in case.files]
    if case.extra:
        sums.append(hashlib.sha256(json.dumps(case.extra, sort_keys=True).encode()).hexdigest())
    return sums


def _case_row(card: DatasetCard, case: CaseFiles, checksums: list[str], run_id: str) -> CaseRow:
    subset = card.subset(case.subset)
    return CaseRow(
        dataset=card.id, case_id=case.case_id, subset=subset.name, status="ok", reason=None,
        shape=None, spacing=None, zarr_path=None,
        source_files=source_names(case), source_sha256=checksums, n_objects=0,
        ingested_at=dt.datetime.now(dt.UTC).replace(microsecond=0), run_id=run_id,
        modality=subset.modality, anatomy=subset.region,
    )


def volume_object_rows(
    card: DatasetCard, case_id: str, subset: Subset, mask: np.ndarray, spacing: tuple[float, float, float],
) -> tuple[VolumeObjectRow, ...]:
    """The ``volume_objects`` rows of a case's ``(z, y, x)`` mask: one per mapped label it holds."""
    return tuple(
        VolumeObjectRow(
            dataset=card.id, case_id=case_id, subset=subset.name, label=obj.label,
            target=subset.labels[obj.label].name, voxels=obj.voxels, volume_mm3=obj.volume_mm3,
            bbox=list(obj.bbox), first_slice=obj.first_slice, last_slice=obj.last_slice,
            key_slice=obj.key_slice, slices=obj.slices, components=obj.components,
            modality=subset.modality, anatomy=subset.labels[obj.label].anatomy,
        )
        for obj in volume_objects(mask, spacing, subset.labels)
    )


def stored_volume_objects(card: DatasetCard, row: CaseRow, store: Location) -> tuple[VolumeObjectRow, ...]:
    """The ``volume_objects`` rows of an already ingested 3D case, from the mask in its store group.

    Why: a catalog written before ``volume_objects`` existed gains the rows without reading the
    source files again (or the image): the stored mask is the one the case's ``objects`` rows came
    from, after reorientation and the label check.
    """
    stored = StoredCase(case_path(store, row.dataset, row.case_id))
    return volume_object_rows(card, row.case_id, card.subset(row.subset), stored.group["labels/mask/0"][...], stored.spacing)


def _ingest(card: DatasetCard, case: CaseFiles, store: Location, row: CaseRow) -> CaseOutcome:
    subset = card.subset(case.subset)
    channels, label = card.reader(case)
    label_source = case.label or case.images[0]  # labels decoded from data in ``extra`` (SIIM's RLE)
    for i, channel in enumerate(channels[1:], start=1):  # channels stack into one array: one grid
        check_same_grid(channels[0], channel, case.images[0], case.images[min(i, len(case.images) - 1)], f"channel {i}")
    if label is not None:
        check_same_grid(channels[0], label, case.images[0], label_source)
    volume = to_volume(channels, label)
    del channels, label  # the volume's arrays hold the images they need; a reoriented source goes now
    check_finite(volume.image, case.images)
    if volume.mask is not None:
        volume.mask = check_label_values(volume.mask, subset.labels, label_source, subset.unmapped_labels)
    windows = [window(volume.image[c], subset.intensity) for c in range(volume.image.shape[0])]
    attrs = {
        "dataset": card.id, "case_id": case.case_id, "subset": subset.name, "modality": subset.modality,
        "source_files": row.source_files, "source_sha256": row.source_sha256,
        "channels": list(subset.channels) if len(subset.channels) == volume.image.shape[0] else
        [f"channel-{i}" for i in range(volume.image.shape[0])],
        "label_map": {str(v): t.name for v, t in subset.labels.items()},
        "window": [list(w) for w in windows], "orientation": "LPS",
    }
    writer = write_small_case if card.dimensionality == 2 else write_case
    path = writer(store, card.id, case.case_id, volume, attrs)
    objects, volumes = [], ()
    if volume.mask is not None:
        for obj in slice_objects(volume.mask, volume.spacing, subset.labels):
            target = subset.labels[obj.label]
            objects.append(ObjectRow(
                dataset=card.id, case_id=case.case_id, subset=subset.name,
                slice_index=obj.slice_index, label=obj.label, target=target.name,
                area_px=obj.area_px, area_mm2=obj.area_mm2, bbox=list(obj.bbox),
                components=obj.components, modality=subset.modality, anatomy=target.anatomy,
            ))
        if card.dimensionality == 3:
            volumes = volume_object_rows(card, case.case_id, subset, volume.mask, volume.spacing)
    row = replace(row, shape=list(volume.image.shape), spacing=list(volume.spacing), zarr_path=str(path), n_objects=len(objects))
    return CaseOutcome(row, tuple(objects), volumes)


def ingest_case(card: DatasetCard, case: CaseFiles, store: Location, run_id: str, checksums: list[str] | None = None) -> CaseOutcome:
    """Ingest ``case``; on any failure return a quarantined row whose reason names the file."""
    checksums = checksums if checksums is not None else source_checksums(case)
    row = _case_row(card, case, checksums, run_id)
    try:
        return _ingest(card, case, as_location(store), row)
    except CaseError as exc:
        reason = str(exc)
    except StorageError:  # the store could not be written: not the source's fault, so no quarantine
        raise
    except Exception as exc:  # an unexpected reader failure must not stop the other cases
        reason = f"{case.images[0]}: {type(exc).__name__}: {exc}"
    return CaseOutcome(replace(row, status="quarantined", reason=reason))


def is_current(previous: CaseRow | None, checksums: list[str], store: Location, quick: bool = False) -> bool:
    """True if a previous ``ok`` ingest of the same source files is complete in the store.

    ``quick`` checks completeness from the root ``zarr.json`` alone (for thousands of small cases)
    instead of opening the group.
    """
    complete = marked_complete if quick else is_complete
    return (
        previous is not None and previous.ok and list(previous.source_sha256) == checksums
        and complete(case_path(store, previous.dataset, previous.case_id))
    )
