"""SAM 2 video mode from the CLI: medsam2 (a RANDOMLY INITIALISED SAM2.1 Hiera-tiny checkpoint, loaded at
MedSAM2's 512 px) under sam2-propagation and sam2-propagation-point on the pyradiomics sample's lung1
lesion (slices 32..34). Plumbing only: the random weights' masks mean nothing; the rows must record
the slices each pass tracked (the GT range plus the margin, forward from the prompted slice, then in
reverse) and one encoder pass per tracked slice. A 2D-only model is refused before anything runs.
"""

from __future__ import annotations

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
    done = run_samatlas(root, "evaluate", "--model", "medsam2", "--checkpoint", tiny_file, "--protocol", "sam2-propagation",
                        "--protocol", "sam2-propagation-point", "--case", "lung1", "--margin-slices", "1",
                        "--store-steps", "none", "--workers", "1")
    assert done.exit_code == 0, done.output
    con = connect(root / "catalog")
    rows = {p: (list(v), e, d) for p, v, e, d in con.execute(
        "SELECT protocol, visited, encoder_calls, decoder_calls FROM volume_steps WHERE case_id = 'lung1'").fetchall()}
    key = con.execute("SELECT key_slice FROM volume_objects WHERE case_id = 'lung1'").fetchone()[0]
    visited, calls, decoded = rows["sam2-propagation"]
    assert visited == [*range(key, HIGH + 1), *range(key, LOW - 1, -1)] and decoded == len(visited)
    point_visited, point_calls, _ = rows["sam2-propagation-point"]
    z = point_visited[0]
    assert point_visited == [*range(z, HIGH + 1), *range(z, LOW - 1, -1)]
    # one pass per tracked slice; a unit's second spec reuses the kept features of the first's last
    # prompted slice when it prompts the same one
    assert {calls, point_calls} <= {HIGH - LOW, HIGH - LOW + 1} and calls + point_calls >= 2 * (HIGH - LOW + 1) - 1
    spec = con.execute("SELECT spec FROM results WHERE protocol = 'sam2-propagation'").fetchone()[0]
    assert '"margin_slices":1' in spec.replace(" ", "")
