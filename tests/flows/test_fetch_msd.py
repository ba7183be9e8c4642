"""``samatlas fetch msd --subset ...`` and ``ingest msd --subset ...`` against a loopback mirror.

The tars are synthetic: a few 5 x 6 x 7 NIfTI volumes of made-up values laid out as MSD's tars are
(``Task04_Hippocampus/{imagesTr,labelsTr,imagesTs}/*.nii.gz``, ``dataset.json``, macOS ``._*``
files). They test download, verification, unpacking, subset selection and ingest plumbing, not
MSD's content. ``SAMATLAS_MIRROR_URL`` points the card's URLs at the loopback server.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from catalog.registry import get_card

TASK = "Task04_Hippocampus"


def own_downloads(cache: Path) -> None:
    """Give ``cache`` a downloads folder of its own: the synthetic tars must never reach the shared
    downloads the other tests link to (they carry the real tars' names)."""
    downloads = cache / "downloads"
    if downloads.is_symlink():
        downloads.unlink()
    downloads.mkdir(parents=True, exist_ok=True)
CASES = {"hippocampus_001": [1, 2], "hippocampus_003": [1]}


def _nifti(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path))


def msd_tar(www: Path, task: str = TASK) -> Path:
    """A tar of ``task`` in MSD's layout, with two labelled cases, one test image and a resource fork."""
    folder = www / "build" / task
    rng = np.random.default_rng(4)
    for case, values in CASES.items():
        _nifti(rng.normal(100, 20, (5, 6, 7)).astype(np.float32), folder / "imagesTr" / f"{case}.nii.gz")
        label = np.zeros((5, 6, 7), np.uint8)
        for i, value in enumerate(values):
            label[1 + 2 * i, 1:4, 2:5] = value
        _nifti(label, folder / "labelsTr" / f"{case}.nii.gz")
    _nifti(np.zeros((5, 6, 7), np.float32), folder / "imagesTs" / "hippocampus_002.nii.gz")
    (folder / "labelsTr" / "._hippocampus_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (folder / "dataset.json").write_text(json.dumps({"name": "Hippocampus", "labels": {"0": "background", "1": "Anterior", "2": "Posterior"}}))
    tar = www / f"{task}.tar"
    with tarfile.open(tar, "w") as out:
        out.add(folder, arcname=task)
    return tar


def test_the_card_holds_monai_s_urls_and_md5s():
    """The card's data is MONAI's (read here from the installed test dependency, never at run time)."""
    from monai.apps import DecathlonDataset

    source = get_card("msd").source
    assert source.algorithm == "md5"
    assert {n.removesuffix(".tar"): url for n, (url, _) in source.files.items()} == DecathlonDataset.resource
    assert {n.removesuffix(".tar"): md5 for n, (_, md5) in source.files.items()} == DecathlonDataset.md5


def test_a_tar_that_does_not_match_the_published_md5_is_refused(http_server, tmp_path: Path, monkeypatch):
    """Through the console script: the synthetic tar cannot have MONAI's MD5, so it must be refused."""
    from tests.conftest import run_samatlas

    msd_tar(http_server.root)
    own_downloads(tmp_path / "cache")
    monkeypatch.setenv("SAMATLAS_MIRROR_URL", http_server.url)
    done = run_samatlas(tmp_path, "fetch", "msd", "--subset", TASK)
    assert done.exit_code == 2 and "download failed" in done.output and "md5" in done.output, done.output
    assert http_server.requests == [(f"/{TASK}.tar", None)]  # refused once, not downloaded again
    release = tmp_path / "cache" / "msd" / "release"
    assert not (release / TASK).exists() and not any(p.name.startswith(TASK) for p in (tmp_path / "cache" / "downloads").iterdir())


def test_fetch_and_ingest_one_task_end_to_end(prefect_server, data_root: Path, http_server, monkeypatch):
    """The CLI in process, so that the card's MD5 for Task04 can be the synthetic tar's (the only
    change to the card); Task09 is served too, and must not be fetched."""
    from catalog.query import connect
    from flows.cli import app
    from tasks.settings import get_settings

    own_downloads(data_root / "cache")
    tar = msd_tar(http_server.root)
    msd_tar(http_server.root, "Task09_Spleen")
    files = get_card("msd").source.files
    monkeypatch.setitem(files, f"{TASK}.tar", (files[f"{TASK}.tar"][0], hashlib.md5(tar.read_bytes()).hexdigest()))
    monkeypatch.setenv("SAMATLAS_MIRROR_URL", http_server.url)
    get_settings.cache_clear()
    runner = CliRunner()

    fetched = runner.invoke(app, ["fetch", "msd", "--subset", TASK])
    assert fetched.exit_code == 0, fetched.output
    release = data_root / "cache" / "msd" / "release"
    labels = sorted(p.name for p in (release / TASK / TASK / "labelsTr").iterdir())
    assert labels == [f"{c}.nii.gz" for c in CASES]  # the resource fork was not unpacked
    assert http_server.requests == [(f"/{TASK}.tar", None)]

    done = runner.invoke(app, ["ingest", "msd", "--subset", TASK])
    assert done.exit_code == 0, done.output
    assert "msd: 2 ingested, 0 unchanged, 0 quarantined" in done.output
    assert http_server.requests == [(f"/{TASK}.tar", None)]  # already there: not downloaded again
    rows = connect(data_root / "catalog").execute(
        "SELECT case_id, subset, status FROM cases WHERE dataset = 'msd' ORDER BY case_id").fetchall()
    assert rows == [(c, "task04-hippocampus", "ok") for c in CASES]
    targets = connect(data_root / "catalog").execute(
        "SELECT case_id, list(DISTINCT target ORDER BY target) FROM objects WHERE dataset = 'msd' GROUP BY 1 ORDER BY 1").fetchall()
    assert targets == [("hippocampus_001", ["hippocampus-anterior", "hippocampus-posterior"]),
                       ("hippocampus_003", ["hippocampus-anterior"])]


@pytest.mark.parametrize("args", [["fetch", "msd", "btcv", "--subset", TASK], ["ingest", "msd", "--subset", "Task99_Nope"]])
def test_bad_subset_use_is_a_clear_error(tmp_path: Path, args: list[str]):
    from tests.conftest import run_samatlas

    done = run_samatlas(tmp_path, *args)
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert ("exactly one dataset" in done.output) or ("no subset 'Task99_Nope'" in done.output and TASK in done.output), done.output
