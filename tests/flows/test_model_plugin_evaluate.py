"""A model plugin evaluated end to end: installed by pip, named on the command line, built in Dask workers.

The plugin (tests/model_plugin_package.py) is a synthetic threshold, so its masks are recomputed here
from the stored slices and the recorded prompts: the rows must be what the plugin itself predicts,
keyed by its own identity, so that a second run computes nothing.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from catalog.query import connect
from tasks.evaluate_unit import slice_rgb
from tasks.models.base import Prompt
from tasks.store import StoredCase
from tests.conftest import copy_catalog, run_samatlas
from tests.model_plugin_package import BRIGHT_BOX_SHA256, MODULE, installed_plugin_package

pytestmark = pytest.mark.slow
EVALUATE = ("evaluate", "--model", "bright-box", "--protocol", "medsam-box", "--case", "brain1",
            "--max-slices-per-case", "2", "--workers", "1")


@pytest.fixture(scope="module")
def plugin_package(tmp_path_factory: pytest.TempPathFactory):
    """The test plugin package, installed into this venv for the module."""
    with installed_plugin_package(tmp_path_factory.mktemp("plugin")) as folder:
        yield folder


def test_a_plugin_model_is_evaluated_in_workers_under_its_identity(plugin_package, ingested_samples, tmp_path: Path):
    root = copy_catalog(ingested_samples, tmp_path / "samatlas-data")
    done = run_samatlas(root, *EVALUATE)
    assert done.exit_code == 0, done.output
    assert f"bright-box ({BRIGHT_BOX_SHA256[:12]}): planned 1 units, 2 objects on 2 slices; wrote 2 result rows" in done.output

    rows = connect(root / "catalog").execute("""
        SELECT r.model, r.model_sha256, r.slice_index, r.label, r.prompt, r.pred_area_px, r.gt_area_px, c.zarr_path
        FROM results r JOIN cases c USING (dataset, case_id) ORDER BY r.slice_index""").fetchall()
    assert len(rows) == 2
    model = importlib.import_module(MODULE).BrightBox()  # the plugin's own class, built here to recompute
    for name, sha256, z, label, prompt, pred_area, gt_area, zarr_path in rows:
        assert (name, sha256) == ("bright-box", BRIGHT_BOX_SHA256)
        image = slice_rgb(StoredCase(zarr_path), z)
        masks, _ = model.decode(model.encode(image), Prompt(box=tuple(json.loads(prompt)["box"])))
        assert pred_area == int(np.count_nonzero(masks[0])) and gt_area > 0

    again = run_samatlas(root, *EVALUATE)  # the identity keys re-evaluation: nothing is left to compute
    assert again.exit_code == 0, again.output
    assert f"bright-box ({BRIGHT_BOX_SHA256[:12]}): planned 0 units" in again.output
