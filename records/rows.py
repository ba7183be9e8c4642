"""Typed catalog rows and their Arrow schemas: one record class per table, checked against its schema.

A row is built as a frozen dataclass, so a misspelt or missing column is a ``TypeError`` where the
row is made, never a null in the catalog; a class whose fields drift from its schema fails at import.
:func:`to_table` turns records into an Arrow table with the explicit schema (never inferred), so a
value of the wrong type is refused too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

SCHEMA_VERSION = 2
PARTITIONS = ("modality", "anatomy")
SLICE, VOLUME = "slice", "volume"
"""Result scopes: one 2D slice of an object, or the whole object through a volume."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """Base of the catalog records; a subclass names its table and Arrow schema."""

    TABLE: ClassVar[str]
    SCHEMA: ClassVar[pa.Schema]
    KEY: ClassVar[tuple[str, ...]]

    @classmethod
    def check_fields(cls) -> None:
        """Refuse a record class whose fields are not exactly its schema's columns, in order, or
        whose key names a column the schema lacks."""
        names = [f.name for f in dataclasses.fields(cls)]
        if names != cls.SCHEMA.names:
            raise TypeError(f"{cls.__name__} fields {names} differ from the {cls.TABLE} schema {cls.SCHEMA.names}")
        if set(cls.KEY) - set(names):
            raise TypeError(f"{cls.__name__}.KEY names columns its schema lacks: {sorted(set(cls.KEY) - set(names))}")


def to_table(rows: Sequence[Row], cls: type[Row]) -> pa.Table:
    """The Arrow table of ``rows`` (all of class ``cls``) with ``cls.SCHEMA``; a wrong type raises."""
    wrong = {type(r).__name__ for r in rows if type(r) is not cls}
    if wrong:
        raise TypeError(f"to_table({cls.__name__}) got rows of {sorted(wrong)}")
    columns = {name: [getattr(r, name) for r in rows] for name in cls.SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=cls.SCHEMA)


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetRow(Row):
    """One ``datasets`` row: a card's description for one of its (modality, region) pairs."""

    TABLE: ClassVar[str] = "datasets"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("name", pa.string()), ("dimensionality", pa.int8()),
        ("targets", pa.list_(pa.string())), ("license", pa.string()), ("citation", pa.string()),
        ("access", pa.string()), ("modality", pa.string()), ("anatomy", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = ("dataset", "modality", "anatomy")

    dataset: str
    name: str
    dimensionality: int
    targets: list[str]
    license: str
    citation: str
    access: str
    modality: str
    anatomy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRow(Row):
    """One ``cases`` row: a case's geometry, sources and status (ok, or quarantined with a reason)."""

    TABLE: ClassVar[str] = "cases"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("case_id", pa.string()), ("subset", pa.string()),
        ("status", pa.string()), ("reason", pa.string()),
        ("shape", pa.list_(pa.int64())),  # (c, z, y, x)
        ("spacing", pa.list_(pa.float64())),  # (z, y, x) mm
        ("zarr_path", pa.string()), ("source_files", pa.list_(pa.string())),
        ("source_sha256", pa.list_(pa.string())), ("n_objects", pa.int64()),
        ("ingested_at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
        ("modality", pa.string()), ("anatomy", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = ("dataset", "case_id")

    dataset: str
    case_id: str
    subset: str
    status: str  # ok | quarantined
    reason: str | None
    shape: list[int] | None
    spacing: list[float] | None
    zarr_path: str | None
    source_files: list[str]
    source_sha256: list[str]
    n_objects: int
    ingested_at: dt.datetime
    run_id: str
    modality: str
    anatomy: str

    @property
    def ok(self) -> bool:
        """True unless the case was quarantined."""
        return self.status == "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRow(Row):
    """One ``objects`` row: one label on one slice, the unit of slice-wise evaluation."""

    TABLE: ClassVar[str] = "objects"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("case_id", pa.string()), ("subset", pa.string()),
        ("slice_index", pa.int32()), ("label", pa.int32()), ("target", pa.string()),
        ("area_px", pa.int64()), ("area_mm2", pa.float64()),
        ("bbox", pa.list_(pa.int32())),  # (y0, x0, y1, x1), inclusive
        ("components", pa.int32()), ("modality", pa.string()), ("anatomy", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = ("dataset", "case_id", "slice_index", "label")

    dataset: str
    case_id: str
    subset: str
    slice_index: int
    label: int
    target: str
    area_px: int
    area_mm2: float
    bbox: list[int]
    components: int
    modality: str
    anatomy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeObjectRow(Row):
    """One ``volume_objects`` row: one label through a whole 3D case, the unit of volumetric protocols.

    ``key_slice`` is the voxel-weighted median slice (the z of the middle foreground voxel in z order,
    the CVPR 2025 ``get_boxes.py`` rule), which can differ from the middle of the slice range; a label
    with a gap in z has ``slices`` < ``last_slice - first_slice + 1``.
    """

    TABLE: ClassVar[str] = "volume_objects"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("case_id", pa.string()), ("subset", pa.string()),
        ("label", pa.int32()), ("target", pa.string()),
        ("voxels", pa.int64()), ("volume_mm3", pa.float64()),
        ("bbox", pa.list_(pa.int32())),  # (z0, y0, x0, z1, y1, x1), inclusive
        ("first_slice", pa.int32()), ("last_slice", pa.int32()), ("key_slice", pa.int32()),
        ("slices", pa.int32()),  # slices that hold the label
        ("components", pa.int32()),  # 26-connected components in 3D
        ("modality", pa.string()), ("anatomy", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = ("dataset", "case_id", "label")

    dataset: str
    case_id: str
    subset: str
    label: int
    target: str
    voxels: int
    volume_mm3: float
    bbox: list[int]
    first_slice: int
    last_slice: int
    key_slice: int
    slices: int
    components: int
    modality: str
    anatomy: str


RESULT_KEY = ("dataset", "case_id", "scope", "slice_index", "label", "model", "model_sha256", "spec_id", "step")
"""What identifies a result: the object (slice or volume scope), the model's weights, the spec, the step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultRow(Row):
    """One ``results`` row: one object scored after one prompt step of one protocol spec."""

    TABLE: ClassVar[str] = "results"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("case_id", pa.string()),
        ("scope", pa.string()),  # slice | volume
        ("slice_index", pa.int32()),  # -1 for volume scope
        ("label", pa.int32()), ("target", pa.string()),
        ("model", pa.string()), ("model_sha256", pa.string()),
        ("protocol", pa.string()),  # the spec's recorded name, e.g. mazurowski-clicks
        ("spec_id", pa.string()),  # short stable id of (protocol, params)
        ("spec", pa.string()),  # canonical JSON of the spec's parameters
        ("spec_label", pa.string()),  # the same, readable: mazurowski-clicks clicks=9 ...
        ("step", pa.int32()),
        ("prompt", pa.string()),  # JSON of the prompt actually sent, in original pixel coordinates
        ("dice", pa.float64()), ("iou", pa.float64()), ("nsd", pa.float64()), ("hd95", pa.float64()),
        ("gt_area_px", pa.int64()), ("pred_area_px", pa.int64()), ("model_score", pa.float64()),
        ("encode_s", pa.float64()), ("decode_s", pa.float64()),
        ("run_id", pa.string()), ("code_version", pa.string()),
        ("modality", pa.string()), ("anatomy", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = RESULT_KEY

    dataset: str
    case_id: str
    scope: str
    slice_index: int
    label: int
    target: str
    model: str
    model_sha256: str
    protocol: str
    spec_id: str
    spec: str
    spec_label: str
    step: int
    prompt: str
    dice: float
    iou: float
    nsd: float
    hd95: float
    gt_area_px: int
    pred_area_px: int
    model_score: float
    encode_s: float
    decode_s: float
    run_id: str
    code_version: str
    modality: str
    anatomy: str


VOLUME_STEP_KEY = ("dataset", "case_id", "label", "model", "model_sha256", "spec_id", "step")
"""What identifies a volumetric step: the volume object, the model's weights, the spec, the step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeStepRow(Row):
    """One ``volume_steps`` row beside each volume-scope ``results`` row: what that step of the
    protocol did (the slices it prompted, in order; the encoder and decoder calls it caused) and the
    volumes it compared. Committed just before its results row, like ``instances``."""

    TABLE: ClassVar[str] = "volume_steps"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("case_id", pa.string()), ("label", pa.int32()),
        ("model", pa.string()), ("model_sha256", pa.string()),
        ("protocol", pa.string()), ("spec_id", pa.string()), ("step", pa.int32()),
        ("visited", pa.list_(pa.int32())),  # the slices this step prompted, in the order it prompted them
        ("encoder_calls", pa.int32()),  # slices this step had to encode (the unit's cache held the others)
        ("decoder_calls", pa.int32()),
        ("gt_mm3", pa.float64()), ("pred_mm3", pa.float64()),
        ("seconds", pa.float64()),  # wall time of the step, encoding included
        ("prediction", pa.string()),  # the case's label image holding this step's mask, or null if not stored
        ("run_id", pa.string()), ("modality", pa.string()), ("anatomy", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = VOLUME_STEP_KEY

    dataset: str
    case_id: str
    label: int
    model: str
    model_sha256: str
    protocol: str
    spec_id: str
    step: int
    visited: list[int]
    encoder_calls: int
    decoder_calls: int
    gt_mm3: float
    pred_mm3: float
    seconds: float
    prediction: str | None
    run_id: str
    modality: str
    anatomy: str


INSTANCE_KEY = ("dataset", "case_id", "slice_index", "model", "model_sha256", "spec_id", "step")
"""What identifies an image-level result: the slice, the model's weights, the spec, the step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRow(Row):
    """One ``instances`` row: every object of one slice pasted into an instance map after one step of
    one spec and matched to the slice's GT instances (micro-sam's mSA, SA50, SA75; see
    ``tasks.instance_metrics``). Not partitioned: a slice's objects can span anatomies."""

    TABLE: ClassVar[str] = "instances"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("dataset", pa.string()), ("case_id", pa.string()), ("slice_index", pa.int32()),
        ("model", pa.string()), ("model_sha256", pa.string()),
        ("protocol", pa.string()), ("spec_id", pa.string()), ("spec_label", pa.string()), ("step", pa.int32()),
        ("n_gt", pa.int32()), ("n_pred", pa.int32()),  # instances after connected-component relabelling
        ("tp", pa.list_(pa.int32())),  # true positives at IoU >= 0.50, 0.55, .., 0.95
        ("msa", pa.float64()), ("sa50", pa.float64()), ("sa75", pa.float64()),
        ("run_id", pa.string()), ("code_version", pa.string()), ("modality", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = INSTANCE_KEY

    dataset: str
    case_id: str
    slice_index: int
    model: str
    model_sha256: str
    protocol: str
    spec_id: str
    spec_label: str
    step: int
    n_gt: int
    n_pred: int
    tp: list[int]
    msa: float
    sa50: float
    sa75: float
    run_id: str
    code_version: str
    modality: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRow(Row):
    """One ``runs`` row: a flow run, written when it starts (status running) and when it ends."""

    TABLE: ClassVar[str] = "runs"
    SCHEMA: ClassVar[pa.Schema] = pa.schema([
        ("run_id", pa.string()), ("flow", pa.string()),
        ("status", pa.string()),  # running | completed | failed | interrupted | killed
        ("started_at", pa.timestamp("us", tz="UTC")), ("duration_s", pa.float64()),
        ("host", pa.string()), ("pid", pa.int64()),
        ("parameters", pa.string()),  # JSON
        ("counts", pa.string()),  # JSON: units, rows, encoder calls, quarantined cases ...
        ("code_version", pa.string()),
    ])
    KEY: ClassVar[tuple[str, ...]] = ("run_id",)

    run_id: str
    flow: str
    status: str
    started_at: dt.datetime
    duration_s: float
    host: str
    pid: int
    parameters: str
    counts: str
    code_version: str


ROW_TYPES: dict[str, type[Row]] = {
    cls.TABLE: cls for cls in (
        DatasetRow, CaseRow, ObjectRow, VolumeObjectRow, ResultRow, VolumeStepRow, InstanceRow, RunRow,
    )
}
PARTITIONED = frozenset({"datasets", "cases", "objects", "volume_objects", "results", "volume_steps"})
for _cls in ROW_TYPES.values():
    _cls.check_fields()
