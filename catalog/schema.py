"""Arrow schemas of the catalog tables; every write and read goes through them (never inferred)."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
PARTITIONS = ("modality", "anatomy")

_KEY = [
    ("dataset", pa.string()),
    ("case_id", pa.string()),
]

DATASETS = pa.schema([
    ("dataset", pa.string()),
    ("name", pa.string()),
    ("dimensionality", pa.int8()),
    ("targets", pa.list_(pa.string())),
    ("license", pa.string()),
    ("citation", pa.string()),
    ("access", pa.string()),
    ("modality", pa.string()),
    ("anatomy", pa.string()),
])

CASES = pa.schema([
    *_KEY,
    ("subset", pa.string()),
    ("status", pa.string()),  # ok | quarantined
    ("reason", pa.string()),
    ("shape", pa.list_(pa.int64())),  # (c, z, y, x)
    ("spacing", pa.list_(pa.float64())),  # (z, y, x) mm
    ("zarr_path", pa.string()),
    ("source_files", pa.list_(pa.string())),
    ("source_sha256", pa.list_(pa.string())),
    ("n_objects", pa.int64()),
    ("ingested_at", pa.timestamp("s", tz="UTC")),
    ("run_id", pa.string()),
    ("modality", pa.string()),
    ("anatomy", pa.string()),
])

OBJECTS = pa.schema([
    *_KEY,
    ("subset", pa.string()),
    ("slice_index", pa.int32()),
    ("label", pa.int32()),
    ("target", pa.string()),
    ("area_px", pa.int64()),
    ("area_mm2", pa.float64()),
    ("bbox", pa.list_(pa.int32())),  # (y0, x0, y1, x1), inclusive
    ("components", pa.int32()),
    ("modality", pa.string()),
    ("anatomy", pa.string()),
])

RESULTS = pa.schema([
    *_KEY,
    ("slice_index", pa.int32()),
    ("label", pa.int32()),
    ("target", pa.string()),
    ("model", pa.string()),
    ("model_sha256", pa.string()),
    ("protocol", pa.string()),
    ("step", pa.int32()),
    ("prompt", pa.string()),  # JSON of the prompt actually sent, in original pixel coordinates
    ("dice", pa.float64()),
    ("iou", pa.float64()),
    ("nsd", pa.float64()),
    ("hd95", pa.float64()),
    ("gt_area_px", pa.int64()),
    ("pred_area_px", pa.int64()),
    ("model_score", pa.float64()),
    ("encode_s", pa.float64()),
    ("decode_s", pa.float64()),
    ("run_id", pa.string()),
    ("code_version", pa.string()),
    ("modality", pa.string()),
    ("anatomy", pa.string()),
])

RUNS = pa.schema([
    ("run_id", pa.string()),
    ("flow", pa.string()),
    ("started_at", pa.timestamp("s", tz="UTC")),
    ("duration_s", pa.float64()),
    ("parameters", pa.string()),  # JSON
    ("counts", pa.string()),  # JSON: units, rows, encoder calls, quarantined cases ...
    ("code_version", pa.string()),
])

TABLES: dict[str, pa.Schema] = {
    "datasets": DATASETS, "cases": CASES, "objects": OBJECTS, "results": RESULTS, "runs": RUNS,
}
PARTITIONED = {"datasets", "cases", "objects", "results"}
