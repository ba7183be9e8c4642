"""SAM 2 video mode from the CLI: sam2.1_hiera_t (a RANDOMLY INITIALISED SAM2.1 Hiera-tiny checkpoint
made here) under sam2-propagation on the pyradiomics sample's lung1 lesion (slices 32..34). Plumbing
only: the random weights' masks mean nothing; the rows must record the slices each pass tracked (the
GT range plus the margin, forward from the prompted slice, then in reverse) and one encoder pass per
tracked slice. A 2D-only model is refused before anything runs. (The point variant and MedSAM2's
512 px are covered in tests/tasks/test_sam2_video.py, without the CLI's fixed cost.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from catalog.query import connect
from tasks.models.sam2_build import compose_config
from tests.conftest import copy_catalog, run_samatlas

pytestmark = pytest.mark.slow
LOW, HIGH = 31, 35  # lung1's lesion 32..34 with --margin-slices 1


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": instantiate(compose_config("sam2.1_hiera_t").model).state_dict()}, path)
    return path


def test_a_2d_only_model_is_refused_naming_the_video_models(tmp_path):
    done = run_samatlas(tmp_path, "evaluate", "--model", "litemedsam", "--protocol", "sam2-propagation")
    assert done.exit_code != 0
    assert "litemedsam has no video mode (video-capable models: sam2.1_hiera_t" in done.output


def test_propagation_rows_record_the_tracked_range(ingested_samples, tmp_path, tiny_file):
    root = copy_catalog(ingested_samples, tmp_path / "samatlas-data")
    done = run_samatlas(root, "evaluate", "--model", "sam2.1_hiera_t", "--checkpoint", tiny_file,
                        "--protocol", "sam2-propagation", "--case", "lung1", "--margin-slices", "1",
                        "--store-steps", "none", "--workers", "1")
    assert done.exit_code == 0, done.output
    con = connect(root / "catalog")
    [(visited, calls, decoded)] = con.execute(
        "SELECT visited, encoder_calls, decoder_calls FROM volume_steps WHERE case_id = 'lung1'").fetchall()
    key = con.execute("SELECT key_slice FROM volume_objects WHERE case_id = 'lung1'").fetchone()[0]
    assert list(visited) == [*range(key, HIGH + 1), *range(key, LOW - 1, -1)] and decoded == len(visited)
    assert calls == HIGH - LOW + 1  # one pass per tracked slice: the prompted one's features kept for the reverse pass
    spec = con.execute("SELECT spec FROM results WHERE protocol = 'sam2-propagation'").fetchone()[0]
    assert '"margin_slices":1' in spec.replace(" ", "")
    identity = con.execute("SELECT DISTINCT model, model_sha256 FROM results").fetchall()
    assert identity == [("sam2.1_hiera_t", hashlib.sha256(tiny_file.read_bytes()).hexdigest())]  # the file's sha256
