"""Ingest of nine volumetric releases through the CLI, each from a tiny replica of its official layout.

The replicas (tests/catalog/replicas_b.py) are synthetic: they reproduce file names, nesting,
formats and quirks, not anatomy. Each test runs one ``samatlas ingest`` and checks the cases, the
label values -> targets, spacing and LPS orientation in the Zarr store, and the ``objects`` rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import replicas_b as rep
import zarr

from catalog.query import connect


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


def ingest(cli, dataset: str, source: Path) -> str:
    """Run ``samatlas ingest`` and return its output; it must exit cleanly."""
    res = cli("ingest", dataset, "--source", source)
    assert res.exit_code == 0, res.output
    return res.output


def statuses(root: Path, dataset: str) -> dict[str, str]:
    return dict(query(root, f"SELECT case_id, status FROM cases WHERE dataset = '{dataset}'"))


def check_case(root: Path, dataset: str, case: str, mask: np.ndarray, targets: dict[int, str],
               spacing: list[float] = rep.STORE_SPACING) -> zarr.Group:
    """The stored case has ``mask`` (already in LPS), the spacing, the label map, and matching objects rows."""
    group = zarr.open_group(str(root / "store" / dataset / case), mode="r")
    meta = group.attrs["samatlas"]
    assert meta["complete"] is True and meta["orientation"] == "LPS"
    assert meta["spacing"] == pytest.approx(spacing)
    np.testing.assert_array_equal(group["labels/mask/0"][:], mask)
    assert all(meta["label_map"][str(v)] == t for v, t in targets.items())
    rows = query(root, f"SELECT label, any_value(target), sum(area_px) FROM objects "
                       f"WHERE dataset = '{dataset}' AND case_id = '{case}' GROUP BY label")
    values, counts = np.unique(mask[mask > 0], return_counts=True)
    assert {r[0]: (r[1], r[2]) for r in rows} == {int(v): (targets[int(v)], int(n)) for v, n in zip(values, counts)}
    return group


def test_msd_tasks_split_4d_channels(cli, data_root: Path, tmp_path: Path):
    out = ingest(cli, "msd", rep.msd(tmp_path))
    assert "msd: 5 ingested, 0 unchanged, 0 quarantined" in out
    assert statuses(data_root, "msd") == dict.fromkeys(rep.MSD_LABELS, "ok")
    brain = {1: "edema", 2: "non-enhancing-tumour", 3: "enhancing-tumour"}
    group = check_case(data_root, "msd", "BRATS_001", rep.as_lps(rep.blocks(rep.MSD_LABELS["BRATS_001"])), brain)
    assert group["image"].shape == (4, *rep.SHAPE)
    assert group.attrs["samatlas"]["channels"] == ["flair", "t1w", "t1gd", "t2w"]
    assert [int(group["image"][c].min()) for c in range(4)] == [0, 1000, 2000, 3000]
    group = check_case(data_root, "msd", "prostate_00", rep.as_lps(rep.blocks([1, 2])),
                       {1: "prostate-peripheral-zone", 2: "prostate-transition-zone"})
    assert group.attrs["samatlas"]["channels"] == ["t2", "adc"] and group["image"].shape[0] == 2
    check_case(data_root, "msd", "hippocampus_001", rep.as_lps(rep.blocks([1, 2])),
               {1: "hippocampus-anterior", 2: "hippocampus-posterior"})
    check_case(data_root, "msd", "lung_001", rep.as_lps(rep.blocks([1])), {1: "lung-tumour"})
    rows = query(data_root, "SELECT case_id, subset, modality, anatomy FROM cases WHERE dataset = 'msd' ORDER BY 1")
    assert rows == [("BRATS_001", "task01-braintumour", "mr", "brain"), ("BRATS_002", "task01-braintumour", "mr", "brain"),
                    ("hippocampus_001", "task04-hippocampus", "mr", "brain"), ("lung_001", "task06-lung", "ct", "chest"),
                    ("prostate_00", "task05-prostate", "mr", "prostate")]
    assert query(data_root, "SELECT DISTINCT anatomy FROM objects WHERE case_id = 'lung_001'") == [("lung",)]


def test_acdc_zip_ed_es_frames_from_info_cfg(cli, data_root: Path, tmp_path: Path):
    ingest(cli, "acdc", rep.acdc(tmp_path))
    assert statuses(data_root, "acdc") == dict.fromkeys(
        ["patient001_ED", "patient001_ES", "patient101_ED", "patient101_ES"], "ok")
    targets = {1: "right-ventricle", 2: "myocardium", 3: "left-ventricle"}
    for patient, (ed, es) in (("patient001", (1, 12)), ("patient101", (1, 9))):
        for phase, frame in (("ED", ed), ("ES", es)):
            group = check_case(data_root, "acdc", f"{patient}_{phase}", rep.as_lps(rep.blocks(rep.ACDC_LABELS[phase])), targets)
            assert int(group["image"][:].min()) == 100 * frame  # the frame Info.cfg names, not another
            assert group["image"].shape == (1, *rep.SHAPE)


def test_mnms_cine_frames_from_csv(cli, data_root: Path, tmp_path: Path):
    out = ingest(cli, "mnms", rep.mnms(tmp_path))
    assert "mnms: 5 ingested, 0 unchanged, 1 quarantined" in out
    wrong = f"{rep.MNMS_WRONG_CSV}_ES"
    assert statuses(data_root, "mnms") == {
        "A0S9V9_ED": "ok", "A0S9V9_ES": "ok", "B2C3D4_ED": "ok", "B2C3D4_ES": "ok", "E5F6G7_ED": "ok", wrong: "quarantined"}
    reason = query(data_root, f"SELECT reason FROM cases WHERE case_id = '{wrong}'")[0][0]
    assert f"{rep.MNMS_WRONG_CSV}_sa_gt.nii.gz" in reason and "frame 5" in reason
    targets = {1: "left-ventricle", 2: "myocardium", 3: "right-ventricle"}
    for (_, code), (ed, es) in rep.MNMS_SUBJECTS.items():
        for phase, frame in (("ED", ed), ("ES", es)):
            if f"{code}_{phase}" == wrong:
                continue
            group = check_case(data_root, "mnms", f"{code}_{phase}", rep.as_lps(rep.blocks(rep.MNMS_LABELS[phase])), targets)
            assert int(group["image"][:].min()) == 100 * frame and group["image"].shape == (1, *rep.SHAPE)
    assert not query(data_root, "SELECT * FROM cases WHERE case_id LIKE 'C0X1Y2%'")  # unlabelled vendor C


def test_abdomenct1k_parts_and_masks(cli, data_root: Path, tmp_path: Path):
    ingest(cli, "abdomenct1k", rep.abdomenct1k(tmp_path))
    assert statuses(data_root, "abdomenct1k") == {"Case_00001": "ok", "Case_00401": "ok", "Case_00801": "quarantined"}
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'Case_00801'")[0][0]
    assert "AbdomenCT-1K-ImagePart3/Case_00801_0000.nii.gz" in reason and "missing" in reason
    targets = {1: "liver", 2: "kidney", 3: "spleen", 4: "pancreas"}
    for case, values in rep.ABDOMEN_LABELS.items():
        check_case(data_root, "abdomenct1k", case, rep.as_lps(rep.blocks(values)), targets)
    assert query(data_root, "SELECT anatomy FROM objects WHERE case_id = 'Case_00001' AND label = 2") == [("kidney",)]


def test_amos22_ct_and_mr_by_case_number(cli, data_root: Path, tmp_path: Path):
    ingest(cli, "amos22", rep.amos22(tmp_path))
    rows = query(data_root, "SELECT case_id, subset, modality, status FROM cases WHERE dataset = 'amos22' ORDER BY 1")
    assert rows == [("amos_0001", "ct", "ct", "ok"), ("amos_0008", "ct", "ct", "ok"), ("amos_0507", "mr", "mr", "ok")]
    targets = {1: "spleen", 6: "liver", 8: "aorta", 9: "inferior-vena-cava", 11: "right-adrenal-gland",
               12: "left-adrenal-gland", 13: "duodenum", 15: "prostate-uterus"}
    for case, values in rep.AMOS_LABELS.items():
        check_case(data_root, "amos22", case, rep.as_lps(rep.blocks(values)), targets)
    assert query(data_root, "SELECT DISTINCT anatomy, modality FROM objects WHERE label = 8") == [("vessels", "ct")]


def test_kits23_slice_first_axes_reoriented(cli, data_root: Path, tmp_path: Path):
    ingest(cli, "kits23", rep.kits23(tmp_path))
    assert statuses(data_root, "kits23") == {"case_00000": "ok", "case_00001": "ok"}
    targets = {1: "kidney", 2: "kidney-tumour", 3: "kidney-cyst"}
    for case, values in rep.KITS_LABELS.items():
        # Slice-first storage with inferior-running slices: in LPS the blocks are where they were drawn.
        check_case(data_root, "kits23", case, rep.blocks(values), targets)


def test_totalsegmentator_masks_merged_in_class_order(cli, data_root: Path, tmp_path: Path):
    from catalog.datasets.totalsegmentator_v2 import CLASSES

    value = {name: v for v, name in enumerate(CLASSES, start=1)}
    spleen = (rep.blocks([1]) == 1).astype(np.uint8)
    vertebra = (rep.blocks([0, 1]) == 1).astype(np.uint8)
    cartilage = (rep.blocks([0, 0, 1]) == 1).astype(np.uint8)
    liver = np.zeros(rep.SHAPE, np.uint8)
    liver[3, 6:10, 6:12] = 1
    aorta = np.zeros(rep.SHAPE, np.uint8)
    aorta[3, 8:11, 10:14] = 1  # overlaps the liver: aorta (52) comes after liver (5), so it wins
    painted = {"s0000": {"spleen": spleen, "vertebrae_L5": vertebra, "costal_cartilages": cartilage},
               "s0001": {"liver": liver, "aorta": aorta},
               "s0002": {"liver": liver}}
    ingest(cli, "totalsegmentator_v2", rep.totalsegmentator(tmp_path, CLASSES, painted, missing="trachea"))
    assert statuses(data_root, "totalsegmentator_v2") == {"s0000": "ok", "s0001": "ok", "s0002": "quarantined"}
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 's0002'")[0][0]
    assert "segmentations/trachea.nii.gz" in reason and "missing" in reason

    first = spleen * value["spleen"] + vertebra * value["vertebrae_L5"] + cartilage * value["costal_cartilages"]
    targets = {1: "spleen", 5: "liver", 27: "vertebrae-l5", 52: "aorta", 117: "costal-cartilages"}
    group = check_case(data_root, "totalsegmentator_v2", "s0000", rep.as_lps(first), targets)
    assert len(group.attrs["samatlas"]["source_sha256"]) == 1 + len(CLASSES)  # the CT and every mask
    second = np.where(aorta > 0, value["aorta"], liver * value["liver"]).astype(np.uint8)
    check_case(data_root, "totalsegmentator_v2", "s0001", rep.as_lps(second), targets)
    anatomy = dict(query(data_root, "SELECT DISTINCT target, anatomy FROM objects WHERE dataset = 'totalsegmentator_v2'"))
    assert anatomy == {"spleen": "spleen", "vertebrae-l5": "bone", "costal-cartilages": "bone", "liver": "liver", "aorta": "vessels"}
    assert (data_root / "catalog" / "objects" / "modality=ct" / "anatomy=bone").is_dir()


def test_brats2023_sequences_as_channels_and_label_3_is_et(cli, data_root: Path, tmp_path: Path):
    out = ingest(cli, "brats2023", rep.brats2023(tmp_path))
    assert statuses(data_root, "brats2023") == {
        "BraTS-GLI-00000-000": "ok", "BraTS-MEN-00004-000": "ok", rep.BRATS_OLD_CONVENTION: "quarantined"}
    assert "label values [4] are not in the card's map" in out
    targets = {1: "non-enhancing-tumour-core", 2: "edema", 3: "enhancing-tumour"}
    for sub, (case, values) in rep.BRATS_CASES.items():
        group = check_case(data_root, "brats2023", case, rep.as_lps(rep.blocks(values)), targets)
        assert group.attrs["samatlas"]["channels"] == ["t1n", "t1c", "t2w", "t2f"]
        assert [int(group["image"][c].min()) for c in range(4)] == [1000, 2000, 3000, 4000]
        assert query(data_root, f"SELECT subset FROM cases WHERE case_id = '{case}'") == [(sub.lower(),)]


def test_hanseg_seg_nrrd_masks_merged_on_ct(cli, data_root: Path, tmp_path: Path):
    from catalog.datasets.hanseg import OARS

    ingest(cli, "hanseg", rep.hanseg(tmp_path))
    assert statuses(data_root, "hanseg") == {"case_01": "ok", "case_02": "ok"}
    value = {oar: v for v, oar in enumerate(OARS, start=1)}
    assert (value["A_Carotid_L"], value["Bone_Mandible"], value["OpticNrv_R"], value["SpinalCord"]) == (1, 4, 26, 30)
    targets = {1: "carotid-artery-left", 4: "mandible", 26: "optic-nerve-right", 30: "spinal-cord"}
    for case, oars in rep.HANSEG_OARS.items():
        merged = sum(rep.hanseg_mask(oars, oar) * value[oar] for oar in oars).astype(np.uint8)
        group = check_case(data_root, "hanseg", case, rep.as_lps(merged), targets)
        assert group["image"].shape == (1, *rep.SHAPE)  # the CT, not the unregistered MR
        files = group.attrs["samatlas"]["source_files"]
        assert files[0].endswith(f"{case}_IMG_CT.nrrd") and len(files) == 1 + len(oars)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.SetSpacing((1.0, 0.7, 3.0)), r"mask spacing \(1\.0, 0\.7, 3\.0\) differs from image ct\.nii\.gz"),
    (lambda m: m.SetOrigin(tuple(np.add(m.GetOrigin(), (0.3, 0, 0)))), r"mask origin \(12\.8, -40\.0, 7\.0\) falls between voxels of image ct\.nii\.gz"),
    (lambda m: m.SetOrigin(tuple(np.add(m.GetOrigin(), (0, 0, 9.0)))), "mask voxels lie outside image ct.nii.gz"),
])
def test_merge_refuses_masks_off_the_image_grid(change, message):
    from tasks.formats.merge import paste
    from tasks.volume import CaseError

    ct = rep.image(rep.scan(0))
    mask = rep.image(rep.blocks([1, 1, 1]))
    change(mask)
    with pytest.raises(CaseError, match=rf"^spleen\.nii\.gz: {message}"):
        paste(np.zeros(rep.SHAPE, np.uint8), mask, 1, ct, Path("spleen.nii.gz"), Path("ct.nii.gz"))


def test_registration_gated_release_names_page_and_file(tmp_path: Path):
    from catalog.registry import get_card
    from tasks.fetch import FetchError, materialise

    with pytest.raises(FetchError, match="syn51156910.*TrainingData.zip.*--source"):
        materialise(get_card("brats2023"), tmp_path)
