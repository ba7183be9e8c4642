"""Ingest of tiny replicas of ten volumetric releases through the CLI, plus their DICOM, PNG and .mat readers.

The replicas are synthetic: a few 16x16 slices of numbered voxels with boxes for labels, written
in each release's exact folder layout, file names and encodings (the quirks of
shared/reference/datasets.md included). They test layout discovery, decoding, geometry checks,
label values -> targets, spacing and orientation in the store and the objects rows, not
segmentation quality. Each dataset is ingested once through ``samatlas ingest ID --source PATH``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import zarr
from replicas_a import (
    RAS,
    box,
    dicom_pixels,
    ramp,
    write_dicom_series,
    write_mat,
    write_png,
    write_volume,
)

from catalog.query import connect
from tasks.formats import chaos as chaos_format
from tasks.formats import dicom, matlab
from tasks.volume import CaseError

SHAPE = (4, 16, 16)


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


def ingest(cli, dataset: str, source: Path):
    """Run the CLI ingest and fail with its output if it did not exit cleanly."""
    result = cli("ingest", dataset, "--source", source)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result


def statuses(root: Path, dataset: str) -> dict[str, str]:
    return dict(query(root, f"SELECT case_id, status FROM cases WHERE dataset = '{dataset}'"))


def check_case(root: Path, dataset: str, case_id: str, mask: np.ndarray, spacing: tuple[float, float, float],
               targets: dict[int, tuple[str, str]], modality: str, image: np.ndarray | None = None) -> zarr.Group:
    """Check one stored case against what the replica put in it, and its objects rows against its mask.

    ``mask`` and ``image`` are the expected arrays in samatlas's LPS orientation; ``targets`` maps
    every label value of the card's subset to (target, anatomy).
    """
    group = zarr.open_group(str(root / "store" / dataset / case_id), mode="r")
    meta = group.attrs["samatlas"]
    assert meta["complete"] is True and meta["orientation"] == "LPS"
    assert meta["spacing"] == pytest.approx(spacing, abs=1e-4)
    assert meta["label_map"] == {str(v): name for v, (name, _) in targets.items()}
    np.testing.assert_array_equal(group["labels/mask/0"][:], mask)
    if image is not None:
        np.testing.assert_array_equal(group["image"][0], image)
    rows = query(root, f"SELECT slice_index, label, target, anatomy, modality, area_px FROM objects "
                       f"WHERE dataset = '{dataset}' AND case_id = '{case_id}'")
    for value in set(np.unique(mask).tolist()) - {0}:
        mine = [r for r in rows if r[1] == value]
        assert {r[0] for r in mine} == set(np.flatnonzero((mask == value).any(axis=(1, 2))).tolist())
        assert sum(r[5] for r in mine) == int((mask == value).sum())
        assert {r[2:5] for r in mine} == {(*targets[value], modality)}
    assert {r[1] for r in rows} == set(np.unique(mask).tolist()) - {0}
    return group


# --- NIfTI and MetaImage releases ------------------------------------------------------------


def test_btcv_ingests_labelled_cases_and_quarantines_a_label_of_another_size(cli, data_root: Path, tmp_path: Path):
    from catalog.datasets.btcv import LABELS

    raw = tmp_path / "btcv" / "RawData"
    image = ramp(SHAPE)
    every_organ = np.zeros(SHAPE, dtype=np.uint8)
    for value in LABELS:  # all 13 labels, one short run each
        every_organ[value % 4, value, 2:5] = value
    liver = box(SHAPE, slice(1, 3), slice(4, 8), slice(5, 9), value=6)
    geometry = {"spacing": (0.7, 0.8, 2.5), "origin": (180.0, 150.0, -300.0), "direction": RAS, "compress": True}
    for number, label in (("0001", every_organ), ("0021", liver)):
        write_volume(raw / "Training" / "img" / f"img{number}.nii.gz", image, **geometry)
        write_volume(raw / "Training" / "label" / f"label{number}.nii.gz", label, **geometry)
    write_volume(raw / "Training" / "img" / "img0003.nii.gz", image, **geometry)
    write_volume(raw / "Training" / "label" / "label0003.nii.gz", liver[:, :, :12], **geometry)  # another size
    write_volume(raw / "Testing" / "img" / "img0061.nii.gz", image, **geometry)  # no public label

    result = ingest(cli, "btcv", tmp_path / "btcv")

    assert "2 ingested" in result.output and "1 quarantined" in result.output
    assert statuses(data_root, "btcv") == {"img0001": "ok", "img0021": "ok", "img0003": "quarantined"}
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'img0003'")[0][0]
    assert "label0003.nii.gz" in reason and "size" in reason
    assert not (data_root / "store" / "btcv" / "img0003").exists()
    targets = {v: (t.name, t.anatomy) for v, t in LABELS.items()}
    # RAS on disk -> LPS in the store: rows and columns reversed.
    check_case(data_root, "btcv", "img0001", every_organ[:, ::-1, ::-1], (2.5, 0.8, 0.7), targets, "ct", image[:, ::-1, ::-1])
    check_case(data_root, "btcv", "img0021", liver[:, ::-1, ::-1], (2.5, 0.8, 0.7), targets, "ct")
    names = query(data_root, "SELECT DISTINCT target FROM objects WHERE case_id = 'img0001' ORDER BY 1")
    assert {n[0] for n in names} == {t.name for t in LABELS.values()}


def test_btcv_without_source_says_where_to_register_and_what_to_pass(cli):
    result = cli("ingest", "btcv")
    assert result.exit_code != 0
    assert "https://www.synapse.org/#!Synapse:syn3193805" in result.output
    assert "RawData.zip" in result.output and "--source" in result.output
    assert "Traceback" not in result.output


def test_lits_uncompressed_nifti_nested_in_batch_folders(cli, data_root: Path, tmp_path: Path):
    release = tmp_path / "lits"
    batch1 = release / "media" / "nas" / "01_Datasets" / "CT" / "LITS" / "Training Batch 1"
    batch2 = release / "media" / "nas" / "01_Datasets" / "CT" / "LITS" / "Training Batch 2"
    image = ramp(SHAPE)
    seg = box(SHAPE, slice(0, 3), slice(2, 12), slice(2, 12), value=1)
    box(SHAPE, slice(1, 2), slice(5, 7), slice(5, 7), value=2, into=seg)
    flipped_z = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    write_volume(batch1 / "volume-0.nii", image, spacing=(0.6, 0.6, 1.0), direction=flipped_z)
    write_volume(batch1 / "segmentation-0.nii", seg.astype(np.float32), spacing=(0.6, 0.6, 1.0), direction=flipped_z)
    (batch1 / "._segmentation-0.nii").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    write_volume(batch2 / "volume-28.nii", image, spacing=(0.6, 0.6, 1.0))
    write_volume(batch2 / "segmentation-28.nii", seg, spacing=(0.6, 0.6, 1.0))
    write_volume(release / "LITS-Challenge-Test-Data" / "test-volume-0.nii", image)

    ingest(cli, "lits", release)

    assert statuses(data_root, "lits") == {"volume-0": "ok", "volume-28": "ok"}
    targets = {1: ("liver", "liver"), 2: ("liver-tumour", "liver")}
    check_case(data_root, "lits", "volume-0", seg[::-1], (1.0, 0.6, 0.6), targets, "ct", image[::-1])
    check_case(data_root, "lits", "volume-28", seg, (1.0, 0.6, 0.6), targets, "ct", image)


def test_promise12_metaimage_pairs_only_cases_with_a_segmentation(cli, data_root: Path, tmp_path: Path):
    release = tmp_path / "promise12"
    image = ramp(SHAPE)
    prostate = box(SHAPE, slice(1, 4), slice(6, 11), slice(5, 10))
    for case in ("Case00", "Case01"):
        write_volume(release / "training_data" / f"{case}.mhd", image, spacing=(0.625, 0.65, 3.6))
        write_volume(release / "training_data" / f"{case}_segmentation.mhd", prostate, spacing=(0.625, 0.65, 3.6))
    write_volume(release / "test_data" / "Case00.mhd", image)
    write_volume(release / "livechallenge_test_data" / "Case00.mhd", image)
    (release / "LICENSE.TXT").write_text("replica")
    assert (release / "training_data" / "Case00.raw").is_file()

    ingest(cli, "promise12", release)

    assert statuses(data_root, "promise12") == {"case00": "ok", "case01": "ok"}
    for case in ("case00", "case01"):
        check_case(data_root, "promise12", case, prostate, (3.6, 0.65, 0.625), {1: ("prostate", "prostate")}, "mr", image)


def test_vessel12_lung_masks_in_their_own_folders(cli, data_root: Path, tmp_path: Path):
    release = tmp_path / "vessel12"
    image = ramp(SHAPE) - 1000
    lungs = box(SHAPE, slice(0, 4), slice(3, 13), slice(2, 7)) | box(SHAPE, slice(0, 4), slice(3, 13), slice(9, 14))
    geometry = {"spacing": (0.7, 0.7, 0.7), "origin": (-170.0, -160.0, -300.0)}
    for name, scans, masks, level in (
        ("VESSEL12_01", "VESSEL12_01-05", "VESSEL12_01-20_Lungmasks", 255),
        ("VESSEL12_02", "VESSEL12_01-05", "VESSEL12_01-20_Lungmasks", 1),
        ("VESSEL12_21", "VESSEL12_ExampleScans/Scans", "VESSEL12_ExampleScans/Lungmasks", 1),
    ):
        write_volume(release / scans / f"{name}.mhd", image, **geometry)
        write_volume(release / masks / f"{name}.mhd", lungs * level, **geometry)
    annotations = release / "VESSEL12_ExampleScans" / "Annotations" / "VESSEL12_21_Annotations.csv"
    annotations.parent.mkdir(parents=True)
    annotations.write_text("3,4,1,1\n8,8,2,0\n")

    ingest(cli, "vessel12", release)

    assert statuses(data_root, "vessel12") == {"VESSEL12_01": "ok", "VESSEL12_02": "ok", "VESSEL12_21": "ok"}
    for case in ("VESSEL12_01", "VESSEL12_02", "VESSEL12_21"):
        check_case(data_root, "vessel12", case, lungs, (0.7, 0.7, 0.7), {1: ("lung", "lung")}, "ct", image)


def test_mosmed_float_masks_for_ct1_studies_only(cli, data_root: Path, tmp_path: Path):
    release = tmp_path / "COVID19_1110"
    image = ramp(SHAPE) - 2000
    lesion = box(SHAPE, slice(1, 3), slice(4, 9), slice(3, 7))
    soft = lesion.astype(np.float32)
    soft[1, 4, 3], soft[2, 8, 6] = 0.7, 0.3  # interpolated edges: > 0.5 counts, <= 0.5 does not
    expected = lesion.copy()
    expected[2, 8, 6] = 0
    geometry = {"spacing": (0.8, 0.8, 8.0), "direction": RAS, "compress": True}
    write_volume(release / "studies" / "CT-0" / "study_0001.nii.gz", image, **geometry)
    for study in ("study_0255", "study_0256"):
        write_volume(release / "studies" / "CT-1" / f"{study}.nii.gz", image, **geometry)
        write_volume(release / "masks" / f"{study}_mask.nii.gz", soft, **geometry)
    (release / "dataset_registry.csv").write_text("study_file,category\n")

    ingest(cli, "mosmed_covid19", release)

    assert statuses(data_root, "mosmed_covid19") == {"study_0255": "ok", "study_0256": "ok"}
    check_case(data_root, "mosmed_covid19", "study_0255", expected[:, ::-1, ::-1], (8.0, 0.8, 0.8),
               {1: ("covid-19-lesion", "lung")}, "ct", image[:, ::-1, ::-1])


# --- DICOM releases --------------------------------------------------------------------------


def test_pancreas_ct_dicom_named_against_position_ingests_in_z_order(cli, data_root: Path, tmp_path: Path):
    """TCIA names slices from the top down; the volume must still run feet to head by position."""
    release = tmp_path / "pancreas"
    image = ramp(SHAPE)
    pancreas = box(SHAPE, slice(0, 2), slice(6, 10), slice(3, 12))  # in the two lowest slices only
    spacing, origin = (0.8, 0.75, 2.5), (-100.0, -120.0, 50.0)
    labels = release / "TCIA_pancreas_labels-02-05-2017"
    for number in ("0001", "0002", "0025"):
        patient = release / "Pancreas-CT" / f"PANCREAS_{number}"
        series = patient / "11-24-2015-PANCREAS0001-Pancreas-99667" / "Pancreas-63502"
        names = [f"1-{SHAPE[0] - k:03d}.dcm" for k in range(SHAPE[0])]  # 1-001.dcm is the top slice
        write_dicom_series(series, image, names, spacing=spacing, origin=origin)
        on_grid = sitk.GetImageFromArray(pancreas)
        on_grid.SetSpacing(spacing)
        on_grid.SetOrigin(origin)
        labels.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.DICOMOrient(on_grid, "RAS"), str(labels / f"label{number}.nii.gz"), True)
    assert sorted(p.name for p in series.iterdir())[0] == "1-001.dcm"
    assert dicom_pixels(series / "1-001.dcm")[0, 0] == image[-1, 0, 0]  # the first name holds the top slice

    ingest(cli, "pancreas_ct", release)

    assert statuses(data_root, "pancreas_ct") == {"PANCREAS_0001": "ok", "PANCREAS_0002": "ok"}  # 0025 withdrawn
    for case in ("PANCREAS_0001", "PANCREAS_0002"):
        group = check_case(data_root, "pancreas_ct", case, pancreas, (2.5, 0.75, 0.8), {1: ("pancreas", "pancreas")}, "ct", image)
        assert group.attrs["samatlas"]["origin"] == pytest.approx(origin)  # the lowest slice's position


def test_ct_lymph_nodes_instance_masks_become_one_target_per_region(cli, data_root: Path, tmp_path: Path):
    release = tmp_path / "lymph"
    image = ramp(SHAPE)
    nodes = box(SHAPE, slice(1, 2), slice(2, 4), slice(2, 4), value=1)
    box(SHAPE, slice(1, 3), slice(8, 10), slice(8, 11), value=2, into=nodes)
    box(SHAPE, slice(3, 4), slice(12, 14), slice(4, 6), value=3, into=nodes)
    spacing, origin = (0.82, 0.82, 1.25), (-210.0, -200.0, -150.0)
    for patient in ("MED_LYMPH_001", "ABD_LYMPH_001"):
        series = release / "CT Lymph Nodes" / patient / "09-14-2014-MEDLYMPH001-mediastinallymphnodes-15764" / "2.000000-91256"
        write_dicom_series(series, image, [f"{k:06d}.dcm" for k in range(SHAPE[0])], spacing=spacing, origin=origin)
        write_volume(release / "MED_ABD_LYMPH_MASKS" / patient / f"{patient}_mask.nii.gz", nodes, spacing=spacing,
                     origin=origin, compress=True)
        centroids = release / "MED_ABD_LYMPH_ANNOTATIONS" / patient / f"{patient}_lymphnodes_physicalPoints.txt"
        centroids.parent.mkdir(parents=True)
        centroids.write_text("-200.1 -190.2 -148.0\n")

    ingest(cli, "ct_lymph_nodes", release)

    assert statuses(data_root, "ct_lymph_nodes") == {"MED_LYMPH_001": "ok", "ABD_LYMPH_001": "ok"}
    merged = (nodes > 0).astype(np.uint8)
    check_case(data_root, "ct_lymph_nodes", "MED_LYMPH_001", merged, (1.25, 0.82, 0.82),
               {1: ("mediastinal-lymph-node", "mediastinum")}, "ct", image)
    check_case(data_root, "ct_lymph_nodes", "ABD_LYMPH_001", merged, (1.25, 0.82, 0.82),
               {1: ("abdominal-lymph-node", "abdomen")}, "ct", image)
    regions = dict(query(data_root, "SELECT case_id, anatomy FROM cases"))
    assert regions == {"MED_LYMPH_001": "mediastinum", "ABD_LYMPH_001": "abdomen"}


def _nrrd(path: Path, array: np.ndarray, spacing, origin, direction) -> None:
    write_volume(path, array, spacing=spacing, origin=origin, direction=direction, compress=True)


def test_nci_isbi2013_labels_resampled_onto_the_t2_series(cli, data_root: Path, tmp_path: Path):
    """NRRD labels on grids of their own; a folder with two series; a corrected label; a label of another region."""
    release = tmp_path / "nci"
    image = ramp(SHAPE)
    spacing, origin = (0.6, 0.6, 3.6), (-40.0, -60.0, 20.0)
    series = "1.000000-T2 AXIAL SM FOV-45631"
    study = "1.3.6.1.4.1.14519.5.2.1.7311.5101.1"
    names = [f"1-{k + 1:02d}.dcm" for k in range(SHAPE[0])]
    for patient, collection in (("Prostate3T-01-0001", "Prostate-3T"), ("ProstateDx-01-0006", "PROSTATE-DIAGNOSIS"),
                                ("ProstateDx-01-0001", "PROSTATE-DIAGNOSIS")):
        write_dicom_series(release / collection / patient / study / series, image, names, spacing, origin, modality="MR")
    # A second series (more slices, elsewhere) in the same folder as ProstateDx-01-0006's T2.
    write_dicom_series(release / "PROSTATE-DIAGNOSIS" / "ProstateDx-01-0006" / study / series, ramp((6, 16, 16)),
                       [f"2-{k + 1:02d}.dcm" for k in range(6)], (0.9, 0.9, 5.0), (-40.0, -60.0, -40.0), modality="MR")

    # Prostate3T-01-0001: half the in-plane resolution, stored head first (z flipped).
    coarse = np.zeros((4, 8, 8), dtype=np.uint8)
    coarse[1:3, 2:6, 2:6] = 1
    coarse[1:3, 5:7, 3:5] = 2
    _nrrd(release / "Training" / "Prostate3T-01-0001.nrrd", coarse[::-1], (1.2, 1.2, 3.6),
          (origin[0] + 0.3, origin[1] + 0.3, origin[2] + 3 * 3.6), (1, 0, 0, 0, 1, 0, 0, 0, -1))
    expected_3t = coarse.repeat(2, axis=1).repeat(2, axis=2)
    # ProstateDx-01-0006: the original label holds a stray value; the corrected one is on a mirrored grid.
    zones = box(SHAPE, slice(0, 3), slice(5, 11), slice(4, 12), value=1)
    box(SHAPE, slice(0, 3), slice(10, 12), slice(4, 12), value=2, into=zones)
    _nrrd(release / "Training" / "ProstateDx-01-0006.nrrd", zones * 3, spacing, origin, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    _nrrd(release / "Training" / "ProstateDx-01-0006_correctedLabels.nrrd", zones[:, :, ::-1], spacing,
          (origin[0] + 15 * 0.6, origin[1], origin[2]), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    # ProstateDx-01-0001: a label 80 mm away from its image.
    _nrrd(release / "Leaderboard" / "ProstateDx-01-0001.nrrd", zones, spacing, (origin[0] + 80, origin[1], origin[2]),
          (1, 0, 0, 0, 1, 0, 0, 0, 1))

    result = ingest(cli, "nci_isbi2013", release)

    assert statuses(data_root, "nci_isbi2013") == {
        "Prostate3T-01-0001": "ok", "ProstateDx-01-0006": "ok", "ProstateDx-01-0001": "quarantined",
    }
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'ProstateDx-01-0001'")[0][0]
    assert "ProstateDx-01-0001.nrrd" in reason and "not the same region" in reason
    assert "ProstateDx-01-0001.nrrd" in result.output
    targets = {1: ("prostate-central-gland", "prostate"), 2: ("prostate-peripheral-zone", "prostate")}
    check_case(data_root, "nci_isbi2013", "Prostate3T-01-0001", expected_3t, (3.6, 0.6, 0.6), targets, "mr", image)
    check_case(data_root, "nci_isbi2013", "ProstateDx-01-0006", zones, (3.6, 0.6, 0.6), targets, "mr", image)


def test_fumpe_mat_masks_follow_instance_order(cli, data_root: Path, tmp_path: Path):
    """FUMPE masks are (rows, columns, slices) in the files' numbering, here head first, on 12x16 slices."""
    release = tmp_path / "FUMPE"
    shape = (4, 12, 16)
    image = ramp(shape)
    clot = box(shape, slice(2, 4), slice(3, 6), slice(9, 13))  # feet-to-head (position) order
    instances = [shape[0] - k for k in range(shape[0])]  # instance 1 is the top slice
    for patient in ("PAT001", "PAT002", "PAT003"):
        write_dicom_series(release / "CT_scans" / patient, image, [f"D{i:04d}.dcm" for i in instances],
                           spacing=(0.7, 0.7, 1.0), origin=(-170.0, -150.0, -200.0), instances=instances)
    by_instance = np.transpose(clot[::-1], (1, 2, 0))  # plane k belongs to instance k + 1
    write_mat(release / "GroundTruth" / "PAT001.mat", Mask=by_instance)
    write_mat(release / "GroundTruth" / "PAT002.mat", Mask=np.zeros_like(by_instance))  # no embolus
    write_mat(release / "GroundTruth" / "PAT003.mat", Mask=np.transpose(by_instance, (1, 0, 2)))  # (x, y, z): wrong

    ingest(cli, "fumpe", release)

    assert statuses(data_root, "fumpe") == {"PAT001": "ok", "PAT002": "ok", "PAT003": "quarantined"}
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'PAT003'")[0][0]
    assert "PAT003.mat" in reason and "(16, 12, 4)" in reason
    targets = {1: ("pulmonary-embolism", "lung")}
    check_case(data_root, "fumpe", "PAT001", clot, (1.0, 0.7, 0.7), targets, "ct", image)
    check_case(data_root, "fumpe", "PAT002", np.zeros(shape, np.uint8), (1.0, 0.7, 0.7), targets, "ct", image)


def test_chaos_png_ground_truth_on_dicom_grids(cli, data_root: Path, tmp_path: Path):
    """CT: 1-bit liver PNGs, DICOM names running head to feet; MR: grey levels within CHAOS's bands, T1 in/out phase."""
    train = tmp_path / "chaos" / "Train_Sets"
    image, n = ramp(SHAPE), SHAPE[0]
    liver_png = box(SHAPE, slice(0, 2), slice(3, 9), slice(1, 8))  # PNG k = k-th file by name
    ct = train / "CT" / "1"
    write_dicom_series(ct / "DICOM_anon", image, [f"i{n - 1 - k:04d},0000b.dcm" for k in range(n)],
                       spacing=(0.73, 0.73, 2.0), origin=(-185.0, -98.0, 1530.5))
    for k in range(n):
        write_png(ct / "Ground" / f"liver_GT_{k:03d}.png", liver_png[k], mode="1")
    organs_png = np.zeros(SHAPE, dtype=np.uint8)
    organs_png[1:3, 2:6, 2:6] = 60  # liver band 55-70
    organs_png[1:3, 8:10, 2:4] = 130  # right kidney band 110-135
    organs_png[2, 8:10, 11:13] = 190  # left kidney band 175-200
    organs_png[3, 12:14, 12:15] = 250  # spleen band 240-255
    snapped = np.select([organs_png == 60, organs_png == 130, organs_png == 190, organs_png == 250],
                        [63, 126, 189, 252], 0).astype(np.uint8)
    mr = train / "MR" / "2"
    geometry = {"spacing": (1.5, 1.5, 7.7), "origin": (-180.0, -150.0, -60.0), "modality": "MR"}
    in_phase = [f"IMG-0004-{2 * k + 2:05d}.dcm" for k in range(n)]
    write_dicom_series(mr / "T1DUAL" / "DICOM_anon" / "InPhase", image, in_phase, **geometry)
    out_phase = [f"IMG-0004-{2 * k + 1:05d}.dcm" for k in range(n)]
    write_dicom_series(mr / "T1DUAL" / "DICOM_anon" / "OutPhase", image + 7, out_phase, **geometry)
    write_dicom_series(mr / "T2SPIR" / "DICOM_anon", image, [f"IMG-0002-{k + 1:05d}.dcm" for k in range(n)], **geometry)
    for k in range(n):
        write_png(mr / "T1DUAL" / "Ground" / f"IMG-0004-{2 * k + 2:05d}.png", organs_png[k])
        write_png(mr / "T2SPIR" / "Ground" / f"IMG-0002-{k + 1:05d}.png", organs_png[k])

    ingest(cli, "chaos", tmp_path / "chaos")

    assert statuses(data_root, "chaos") == {"ct-1": "ok", "mr-2-t1dual": "ok", "mr-2-t2spir": "ok"}
    # CT names run head to feet, so PNG k lies at position n-1-k; the store runs feet to head.
    check_case(data_root, "chaos", "ct-1", liver_png[::-1], (2.0, 0.73, 0.73), {1: ("liver", "liver")}, "ct", image)
    mr_targets = {63: ("liver", "liver"), 126: ("right-kidney", "kidney"), 189: ("left-kidney", "kidney"),
                  252: ("spleen", "spleen")}
    t1 = check_case(data_root, "chaos", "mr-2-t1dual", snapped, (7.7, 1.5, 1.5), mr_targets, "mr", image)
    np.testing.assert_array_equal(t1["image"][1], image + 7)
    assert t1.attrs["samatlas"]["channels"] == ["in-phase", "opposed-phase"]
    check_case(data_root, "chaos", "mr-2-t2spir", snapped, (7.7, 1.5, 1.5), mr_targets, "mr", image)


# --- readers without the CLI -----------------------------------------------------------------


def test_dicom_series_is_ordered_by_position_along_the_normal_not_by_name(tmp_path: Path):
    image = ramp((5, 6, 7))
    names = ["c.dcm", "a.dcm", "e.dcm", "b.dcm", "d.dcm"]  # shuffled against position
    files = write_dicom_series(tmp_path / "series", image, names, spacing=(0.5, 0.6, 3.0), origin=(1.0, 2.0, -10.0))
    volume, series = dicom.read_series(sorted(files), tmp_path / "series")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume), image)
    assert volume.GetOrigin() == pytest.approx((1.0, 2.0, -10.0))
    assert volume.GetSpacing() == pytest.approx((0.5, 0.6, 3.0))
    assert volume.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert [s.path.name for s in series.slices] == names


def test_dicom_folder_with_two_series_reads_the_larger_and_refuses_a_tie(tmp_path: Path):
    folder = tmp_path / "mixed"
    write_dicom_series(folder, ramp((3, 8, 8)), ["a1.dcm", "a2.dcm", "a3.dcm"])
    write_dicom_series(folder, ramp((5, 8, 8)) + 1, [f"b{k}.dcm" for k in range(5)], origin=(0.0, 0.0, 0.0))
    volume, _ = dicom.read_series(sorted(folder.iterdir()), folder)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume), ramp((5, 8, 8)) + 1)
    write_dicom_series(folder, ramp((5, 8, 8)), [f"c{k}.dcm" for k in range(5)], origin=(9.0, 9.0, 9.0))
    with pytest.raises(CaseError, match="cannot tell which"):
        dicom.read_series(sorted(folder.iterdir()), folder)


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path: Path):
    files = write_dicom_series(tmp_path / "gap", ramp((5, 4, 4)), [f"{k}.dcm" for k in range(5)])
    files[2].unlink()
    with pytest.raises(CaseError, match="slices are missing"):
        dicom.read_series([f for f in files if f.exists()], tmp_path / "gap")


def test_chaos_grey_level_outside_every_band_names_the_png(tmp_path: Path):
    plane = np.zeros((4, 4), dtype=np.uint16)
    plane[1, 1], plane[2, 2] = 63, 90
    with pytest.raises(CaseError, match=r"odd\.png.*\[90\]"):
        chaos_format.mr_labels(plane, tmp_path / "odd.png")


def test_matlab_v73_mask_reads_with_matlab_axis_order(tmp_path: Path):
    """v7.3 .mat files are HDF5 holding the column-major array, i.e. the axes reversed."""
    import h5py  # a declared dependency: a missing one must fail, not skip
    mask = np.zeros((3, 4, 2), dtype=np.uint8)  # (rows, columns, slices)
    mask[1, 2, 1] = 1
    path = tmp_path / "PAT001.mat"
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle["Mask"] = mask.T
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file".ljust(116) + bytes(8) + b"\x00\x02IM")
    np.testing.assert_array_equal(matlab.read_mask(path), mask)
