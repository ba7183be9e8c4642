"""The Zarr store: one OME-Zarr group per case, written whole under a staging name, then renamed.

Layout (OME-Zarr 0.5 on Zarr v3, so napari-ome-zarr opens a case)::

    <store>/<dataset>/<case>/image          (c, z, y, x), one slice per chunk, Blosc-compressed (CHUNK_CODECS)
    <store>/<dataset>/<case>/labels/mask/0  (z, y, x) integer label map
    <store>/<dataset>/<case>/labels/<name>/0  a stored prediction (tasks/predictions.py)
    attrs["samatlas"]: spacing, origin, original affine, sha256s, channels, label map, intensity
                       window, complete=true (written last)

Small cases (2D images) are written by :func:`write_small_case`: the same group, byte for byte the
same metadata, but encoded by zarr in memory in one call and then written as plain files, because
zarr's per-call overhead (about 1 ms per metadata or chunk operation, 16 of them per case) dominates
for a 64x64 image: 3-5 ms instead of about 21 ms per case on two cores. A case is 7 files (6 when
its mask is all zero: zarr does not store a chunk equal to the fill value) in 12 directories.

The store may be an fsspec URL (``s3://bucket/store``). Object stores have no rename, so there a case
is written in place and its root ``zarr.json`` is the commit marker: a re-write deletes the old root
``zarr.json`` first (the old case stops being a case at once), then the old objects, writes the
arrays, and the root metadata with ``complete=true`` last. At every moment the final name holds
nothing, a group that is not ``complete`` (which every reader refuses), or the whole new case; the
catalog row that lets evaluate see the case is committed only after that.
"""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr
import zarr.api.asynchronous as zarr_async
from zarr.codecs import BloscCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from tasks.locations import Location, as_location, filesystem, is_remote, join
from tasks.storage_errors import StorageError, storage_error, writing
from tasks.volume import Volume

AXES = [
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "millimeter"},
    {"name": "y", "type": "space", "unit": "millimeter"},
    {"name": "x", "type": "space", "unit": "millimeter"},
]
LABEL_AXES = AXES[1:]

CHUNK_CODECS = (BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),)
"""How every array's chunks are compressed: Blosc's byte shuffle (the high bytes of int16 CT values
vary little) then Zstandard at level 1. Against zarr's default (Zstandard level 0, i.e. 3, unshuffled),
measured on the sample chest CT lung2 (61 slices of 512x512 int16 with its mask, 48 MB): writes 585
against 233 MB/s, 3.09 against 2.73 times smaller, slice reads 495 against 450 MB/s; on the MNI152
template (uint8) 123 against 104 MB/s at the same size (8.9x). Any zarr reader decodes it (the codec
is in each array's metadata), so stores written before stay readable."""


def case_path(store: Location, dataset: str, case_id: str) -> Location:
    """Where a case lives in the store (a Path, or a URL for an object store)."""
    return join(store, dataset, case_id)


def write_label_array(group: zarr.Group, labels: np.ndarray) -> None:
    """A label image's array ``0`` in ``group``: ``(z, y, x)``, one slice per chunk."""
    _, y, x = labels.shape
    array = group.create_array(
        "0", shape=labels.shape, dtype=labels.dtype, chunks=(1, y, x), dimension_names=("z", "y", "x"),
        compressors=CHUNK_CODECS,
    )
    array[...] = labels


def _write_arrays(group: zarr.Group, volume: Volume) -> None:
    # ome-zarr writes the metadata only, so it is imported here: its import (its pydantic models) costs
    # 0.2-0.3 s beyond the rest of an evaluate worker's imports, which every process that only reads
    # stores (an evaluate command, each of its workers) paid.
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

    c, z, y, x = volume.image.shape
    image = group.create_array(
        "image", shape=volume.image.shape, dtype=volume.image.dtype, chunks=(c, 1, y, x),
        dimension_names=("c", "z", "y", "x"), compressors=CHUNK_CODECS,
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
    write_label_array(mask_group, volume.mask)
    write_multiscales_metadata(
        mask_group, [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(volume.spacing)}]}],
        fmt=FormatV05(), axes=LABEL_AXES,
    )
    write_label_metadata(labels, "mask", fmt=FormatV05())


def case_meta(volume: Volume, attrs: dict[str, Any]) -> dict[str, Any]:
    """The ``samatlas`` attributes of a case: its geometry plus the ingest's ``attrs``."""
    return {
        "spacing": list(volume.spacing), "origin": list(volume.origin), "original_affine": volume.original_affine,
        "spacing_from_file": volume.spacing_from_file, **attrs,
    }


@contextmanager
def _staged(final: Path) -> Iterator[Path]:
    """A staging folder beside ``final``, renamed to it (replacing an older case) if the block succeeds.

    A crash or an error leaves no half-written case: the staging folder is removed (or, after a
    kill, swept by :func:`sweep_staging` on the next run). An ``OSError`` on the way (a full disk)
    is a :class:`~tasks.storage_errors.StorageError` naming the path and its free space, not a
    problem of the case's source files.
    """
    staging = final.parent / f".staging-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        with writing(staging):
            final.parent.mkdir(parents=True, exist_ok=True)
            yield staging
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _in_place(final: str) -> Iterator[str]:
    """The object-store counterpart of :func:`_staged`: the old case at URL ``final`` is unmade (root
    ``zarr.json`` first) and removed, the block writes the new one there (root metadata last); if the
    block fails, what it wrote is removed again, so no incomplete group is left under the name.

    The block only writes samatlas's own arrays, so every ``OSError`` in it (s3fs raises a missing
    bucket or a refused credential as one, often without an errno) is a StorageError, never a
    problem of the case's sources.
    """
    fs, path = filesystem(final)
    try:
        _remove_objects(fs, path)
        yield final
    except BaseException as exc:
        try:
            _remove_objects(fs, path)
        except OSError:
            pass  # the store is unreachable: nothing could have been written either
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(final, exc) from exc
        raise


def _remove_objects(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Delete a case's objects under ``path``, its root ``zarr.json`` first."""
    if fs.exists(f"{path}/zarr.json"):
        fs.rm_file(f"{path}/zarr.json")
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_target(final: Location) -> AbstractContextManager[Location]:
    """Where a writer puts a new group (a case, a stored prediction): a staging folder beside
    ``final`` renamed into place, or the URL itself, unmade first and committed by its root
    metadata last."""
    return _in_place(str(final)) if is_remote(final) else _staged(Path(final))


def write_case(store: Location, dataset: str, case_id: str, volume: Volume, attrs: dict[str, Any]) -> Location:
    """Write a case whole: staging folder first, ``complete`` attribute last, then an atomic rename
    (on an object store: in place, the root metadata last; see the module docstring).

    A crash leaves only a ``.staging-*`` folder, never a half-written case; a re-ingest replaces the
    old case only once the new one is complete.
    """
    final = case_path(store, dataset, case_id)
    with write_target(final) as staging:
        group = zarr.open_group(str(staging), mode="w", zarr_format=3)
        _write_arrays(group, volume)
        meta = case_meta(volume, attrs)
        group.attrs["samatlas"] = meta
        group.attrs["samatlas"] = {**meta, "complete": True}
    return final


@lru_cache(maxsize=64)
def _ome_attrs(spacing: tuple[float, float, float], has_mask: bool) -> dict[str, dict[str, Any]]:
    """The OME attributes of the root, ``labels`` and ``labels/mask`` groups for a spacing.

    Made once per spacing by the same ome-zarr calls as :func:`write_case`, on a throwaway in-memory
    group, so both writers give identical metadata.
    """
    group = zarr.open_group(MemoryStore(), mode="w", zarr_format=3)
    mask = np.zeros((1, 1, 1), np.uint8) if has_mask else None
    _write_arrays(group, Volume(np.zeros((1, 1, 1, 1), np.uint8), mask, spacing, (0.0, 0.0, 0.0), []))
    attrs = {"": dict(group.attrs)}
    if has_mask:
        attrs["labels"] = dict(group["labels"].attrs)
        attrs["labels/mask"] = dict(group["labels/mask"].attrs)
    return attrs


def label_image_attrs(spacing: tuple[float, float, float]) -> dict[str, Any]:
    """The OME attributes (multiscales and image-label) of ``labels/mask`` for a spacing, which every
    label image of the case (stored predictions) carries too."""
    return copy.deepcopy(_ome_attrs(tuple(float(s) for s in spacing), True)["labels/mask"])


async def _encode(volume: Volume, groups: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, bytes]:
    """Every key of the case's group and its bytes, encoded by zarr in an in-memory store."""
    store = MemoryStore()
    for path, attributes in groups.items():  # parents first: zarr would otherwise make them empty
        if path == "":
            attributes = {**attributes, "samatlas": meta}
        await zarr_async.group(store=store, path=path, attributes=attributes, zarr_format=3)
    c, z, y, x = volume.image.shape
    await zarr_async.create_array(
        store, name="image", data=volume.image, chunks=(c, 1, y, x), dimension_names=("c", "z", "y", "x"),
        compressors=CHUNK_CODECS,
    )
    if volume.mask is not None:
        await zarr_async.create_array(
            store, name="labels/mask/0", data=volume.mask, chunks=(1, y, x), dimension_names=("z", "y", "x"),
            compressors=CHUNK_CODECS,
        )
    prototype = default_buffer_prototype()
    return {key: (await store.get(key, prototype=prototype)).to_bytes() async for key in store.list()}


def write_small_case(store: Location, dataset: str, case_id: str, volume: Volume, attrs: dict[str, Any]) -> Location:
    """Write a case as :func:`write_case` does, for small cases where zarr's per-call cost dominates.

    The group is encoded in memory in one zarr call, then written into a staging folder as files:
    chunks first, then array and group metadata, the root ``zarr.json`` (which holds
    ``complete=true``) last, then the folder is renamed into place.
    """
    final = case_path(store, dataset, case_id)
    meta = {**case_meta(volume, attrs), "complete": True}
    files = sync(_encode(volume, _ome_attrs(tuple(volume.spacing), volume.mask is not None), meta))
    order = sorted(files, key=lambda k: (k == "zarr.json", k.endswith("zarr.json"), k))
    if is_remote(final):
        with _in_place(str(final)):
            fs, path = filesystem(final)
            fs.pipe({f"{path}/{key}": files[key] for key in order[:-1]})  # in parallel; the root after
            fs.pipe_file(f"{path}/zarr.json", files["zarr.json"])
        return final
    with _staged(Path(final)) as staging:
        for key in order:
            path = staging / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[key])
    return final


def marked_complete(path: Location) -> bool:
    """True if the case at ``path`` has ``complete=true`` in its root ``zarr.json``.

    A cheap check (one small file read, no zarr call) for skipping thousands of unchanged images.
    """
    try:
        if is_remote(path):
            fs, key = filesystem(path)
            raw = fs.cat_file(f"{key}/zarr.json")
        else:
            raw = (Path(path) / "zarr.json").read_bytes()
        meta = json.loads(raw)
    except (OSError, ValueError):
        return False
    return bool(meta.get("attributes", {}).get("samatlas", {}).get("complete"))


def sweep_staging(store: Location, dataset: str) -> int:
    """Remove staging folders left by killed writers; return how many (an object store has none: a
    killed writer leaves an incomplete group, which the next ingest of the case replaces)."""
    if is_remote(store):
        return 0
    root = Path(store) / dataset
    leftovers = list(root.glob(".staging-*")) if root.exists() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


class StoredCase:
    """Read access to one complete case: metadata, one image slice, one mask slice."""

    def __init__(self, path: Location):
        self.path = as_location(path)
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


def is_complete(path: Location) -> bool:
    """True if a complete case lives at ``path``."""
    try:
        StoredCase(path)
    except (FileNotFoundError, KeyError, ValueError):
        return False
    return True
