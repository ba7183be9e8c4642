"""The store's two case writers (tasks/store.py) write the same arrays, codec and metadata.

Synthetic volume (int16 noise with a square label): plumbing and layout, not image quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from tasks.store import StoredCase, write_case, write_small_case
from tasks.volume import Volume


def _volume() -> Volume:
    rng = np.random.default_rng(0)
    image = rng.normal(40, 20, (1, 3, 48, 40)).astype(np.int16)
    mask = np.zeros((3, 48, 40), np.uint8)
    mask[1, 10:20, 5:15] = 1
    return Volume(image, mask, (2.5, 0.7, 0.7), (0.0, 0.0, 0.0), np.eye(4).tolist())


def test_both_writers_store_the_same_blosc_arrays_and_metadata(tmp_path: Path):
    volume = _volume()
    written = {name: writer(tmp_path / name, "ds", "case", volume, {"note": "x"})
               for name, writer in (("group", write_case), ("small", write_small_case))}
    for array in ("image", "labels/mask/0"):
        meta = {name: json.loads((Path(path) / array / "zarr.json").read_text()) for name, path in written.items()}
        assert meta["group"] == meta["small"]
        compressors = [c for c in meta["group"]["codecs"] if c["name"] != "bytes"]
        assert [c["name"] for c in compressors] == ["blosc"]
        assert compressors[0]["configuration"]["cname"] == "zstd"
        assert compressors[0]["configuration"]["shuffle"] == "shuffle"
    for path in written.values():
        case = StoredCase(path)
        np.testing.assert_array_equal(zarr.open_array(str(Path(path) / "image"), mode="r")[:], volume.image)
        np.testing.assert_array_equal(case.group["labels/mask/0"][:], volume.mask)
