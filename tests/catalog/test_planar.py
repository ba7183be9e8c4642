"""The 14 planar survey datasets: a tiny synthetic replica of each official release, ingested through the CLI.

Each test writes the release's exact names, folder nesting and encodings (the quirks datasets.md
lists) with synthetic pixels, runs ``samatlas ingest ID --source REPLICA`` once, and checks the
cases, label values -> targets, channels, spacing and the ``objects`` rows. The replicas test layouts
and plumbing, not segmentation quality.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import zarr

from catalog.query import connect
from replicas_planar import (
    SHAPE, encode_rle, junk, ramp, rect, save, save_palette_gif, write_dicom_radiograph, write_itk, write_jsrt_img,
)
from tasks.formats.colourmap import ABDOMENUS_COLOURS, labels_from_colours
from tasks.formats.greylevels import REFUGE_LEVELS, relabel
from tasks.formats.planar import fit_to
from tasks.formats.rle import decode_rle
from tasks.volume import CaseError

@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The folder a test writes its replica release into (apart from the data root)."""
    folder = tmp_path / "release"
    folder.mkdir()
    return folder


def ingest(cli, dataset: str, source: Path) -> str:
    """Run the CLI ingest and return its output (the run must succeed)."""
    result = cli("ingest", dataset, "--source", source)
    assert result.exit_code == 0, result.output
    return result.output


def query(root: Path, sql: str) -> list[tuple]:
    return connect(root / "catalog").execute(sql).fetchall()


def statuses(root: Path, dataset: str) -> dict[str, str]:
    return dict(query(root, f"SELECT case_id, status FROM cases WHERE dataset = '{dataset}'"))


def objects(root: Path, dataset: str) -> dict[tuple[str, int], tuple]:
    """(case, label) -> (target, anatomy, area_px, components, modality) of a dataset's objects."""
    rows = query(root, f"SELECT case_id, label, target, anatomy, area_px, components, modality FROM objects "
                       f"WHERE dataset = '{dataset}'")
    return {(r[0], r[1]): r[2:] for r in rows}


def stored(root: Path, dataset: str, case: str) -> zarr.Group:
    return zarr.open_group(str(root / "store" / dataset / case), mode="r")


def mask_of(root: Path, dataset: str, case: str) -> np.ndarray:
    return stored(root, dataset, case)["labels/mask/0"][0]


@pytest.mark.slow
def test_jsrt_img_with_scr_masks_and_segmentation02(cli, data_root: Path, source: Path):
    release = source / "jsrt"
    raw = np.tile(np.arange(2048, dtype=np.uint16) % 4096, (2048, 1))
    write_jsrt_img(release / "All247images" / "JPCLN001.IMG", raw)
    (release / "All247images" / "JPCNN001.IMG").write_bytes(b"\x0f\xff" * 1000)  # truncated download
    masks = release / "scr" / "scratch" / "fold1" / "masks"
    shapes = {
        "right lung": rect((1024, 1024), slice(200, 700), slice(150, 450)),
        "left lung": rect((1024, 1024), slice(200, 700), slice(600, 900)),
        "heart": rect((1024, 1024), slice(600, 800), slice(400, 640)),
        "left clavicle": rect((1024, 1024), slice(150, 250), slice(600, 900)),
        "right clavicle": rect((1024, 1024), slice(150, 250), slice(150, 450)),
    }
    for structure, mask in shapes.items():
        for stem in ("JPCLN001", "JPCNN001"):
            save_palette_gif(masks / structure / f"{stem}.gif", mask)
    seg = release / "segmentation02" / "segmentation"
    save(seg / "org_train" / "case001.bmp", ramp())
    label = rect(SHAPE, slice(2, 18), slice(2, 12), 255)
    rect(SHAPE, slice(5, 15), slice(15, 25), 85, into=label)
    save(seg / "label_train" / "case001.png", label)
    junk(release / "All247images", "JPCLN001.IMG")

    out = ingest(cli, "jsrt", release)
    assert "2 ingested, 0 unchanged, 1 quarantined" in out, out
    assert statuses(data_root, "jsrt") == {"jpcln001": "ok", "jpcnn001": "quarantined", "seg02-train-case001": "ok"}
    assert "JPCNN001.IMG" in query(data_root, "SELECT reason FROM cases WHERE case_id = 'jpcnn001'")[0][0]
    case = stored(data_root, "jsrt", "jpcln001")
    assert case["image"].shape == (1, 1, 2048, 2048) and case["image"].dtype == np.uint16
    assert case["image"][0, 0, 5, :4].tolist() == [4095, 4094, 4093, 4092]  # inverted film density
    meta = case.attrs["samatlas"]
    assert meta["spacing"] == [1.0, 1.0, 1.0] and meta["spacing_from_file"] is False
    found = objects(data_root, "jsrt")
    # SCR masks at 1024 are scaled x2 onto the 2048 image; the heart is painted over the lungs.
    assert found[("jpcln001", 3)][:3] == ("heart", "heart", 4 * 200 * 240)
    assert found[("jpcln001", 1)][:3] == ("right-lung", "lung", 4 * (500 * 300 - 100 * 50))
    assert found[("jpcln001", 2)][:3] == ("left-lung", "lung", 4 * (500 * 300 - 100 * 40))
    assert found[("seg02-train-case001", 1)][:3] == ("lungs", "lung", 160)
    assert found[("seg02-train-case001", 2)][:3] == ("heart", "heart", 100)
    assert {k[1] for k in found if k[0] == "jpcln001"} == {1, 2, 3}  # clavicles not ingested


@pytest.mark.slow
def test_glas_instance_maps_are_binarised(cli, data_root: Path, source: Path):
    release = source / "Warwick QU Dataset (Released 2016_07_08)"
    instances = rect(SHAPE, slice(2, 8), slice(2, 10), 1)
    rect(SHAPE, slice(12, 18), slice(14, 26), 2, into=instances)
    for name in ("train_1", "testA_1", "testB_1"):
        save(release / f"{name}.bmp", ramp(rgb=True))
        save(release / f"{name}_anno.bmp", instances)
    save(release / "train_2.bmp", ramp(rgb=True))  # no annotation: not a case
    (release / "Grade.csv").write_text("name,patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)\n"
                                       "testA_1,4,benign,adenomatous\n")
    out = ingest(cli, "glas", source)
    assert "3 ingested" in out, out
    assert set(statuses(data_root, "glas")) == {"train_1", "testa_1", "testb_1"}
    case = stored(data_root, "glas", "train_1")
    assert case["image"].shape == (3, 1, *SHAPE) and case.attrs["samatlas"]["channels"] == ["red", "green", "blue"]
    assert np.array_equal(case["image"][:, 0], np.moveaxis(ramp(rgb=True), -1, 0))
    assert set(np.unique(mask_of(data_root, "glas", "train_1"))) == {0, 1}
    assert objects(data_root, "glas")[("train_1", 1)] == ("gland", "colon", 48 + 72, 2, "pathology")


@pytest.mark.slow
def test_drive_tiff_with_gif_manual_and_fov(cli, data_root: Path, source: Path):
    release = source / "DRIVE"
    vessels = rect(SHAPE, slice(3, 17), slice(10, 12))
    fov = rect(SHAPE, slice(1, 19), slice(1, 27))
    save(release / "training" / "images" / "21_training.tif", ramp(rgb=True))
    save_palette_gif(release / "training" / "1st_manual" / "21_manual1.gif", vessels)
    save_palette_gif(release / "training" / "mask" / "21_training_mask.gif", fov)
    save(release / "training" / "images" / "22_training.tif", ramp(rgb=True))
    save_palette_gif(release / "training" / "1st_manual" / "22_manual1.gif", vessels)
    save_palette_gif(release / "training" / "mask" / "22_training_mask.gif", fov[:10])  # wrong size
    save(release / "test" / "images" / "01_test.tif", ramp(rgb=True))  # labels withheld: not a case
    save_palette_gif(release / "test" / "mask" / "01_test_mask.gif", fov)
    out = ingest(cli, "drive", release)
    assert "1 ingested, 0 unchanged, 1 quarantined" in out, out
    assert "22_training_mask.gif" in query(data_root, "SELECT reason FROM cases WHERE case_id = 'train-22'")[0][0]
    assert stored(data_root, "drive", "train-21")["image"].shape == (3, 1, *SHAPE)
    assert objects(data_root, "drive")[("train-21", 1)][:3] == ("retinal-vessels", "retina", 28)
    sources = query(data_root, "SELECT source_files FROM cases WHERE case_id = 'train-21'")[0][0]
    assert any(s.endswith("21_training_mask.gif") for s in sources)


@pytest.mark.slow
def test_refuge_inverted_disc_cup_levels(cli, data_root: Path, source: Path):
    mask = np.full(SHAPE, 255, np.uint8)
    rect(SHAPE, slice(4, 16), slice(6, 22), 128, into=mask)
    rect(SHAPE, slice(8, 12), slice(10, 18), 0, into=mask)
    pairs = {
        ("REFUGE-Training400/Training400/Glaucoma/g0001.jpg", "Annotation-Training400/Disc_Cup_Masks/Glaucoma/g0001.bmp"),
        ("REFUGE-Training400/Training400/Non-Glaucoma/n0001.jpg",
         "Annotation-Training400/Disc_Cup_Masks/Non-Glaucoma/n0001.bmp"),
        ("REFUGE-Validation400/V0001.jpg", "REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp"),
        ("REFUGE-Test400/T0001.jpg", "REFUGE-Test-GT/Disc_Cup_Masks/G/T0001.bmp"),
    }
    for image, label in pairs:
        save(source / image, ramp(rgb=True), quality=95)
        save(source / label, mask)
    out = ingest(cli, "refuge", source)
    assert "4 ingested" in out, out
    assert set(statuses(data_root, "refuge")) == {"train-g0001", "train-n0001", "val-v0001", "test-t0001"}
    found = objects(data_root, "refuge")
    assert found[("val-v0001", 1)][:3] == ("optic-cup", "optic-disc", 32)
    assert found[("val-v0001", 2)][:3] == ("optic-disc-rim", "optic-disc", 12 * 16 - 32)
    assert stored(data_root, "refuge", "test-t0001")["image"].shape == (3, 1, *SHAPE)


@pytest.mark.slow
def test_siim_dicom_rle_and_png_mirror(cli, data_root: Path, source: Path):
    release = source / "siim"
    first = rect(SHAPE, slice(2, 6), slice(3, 9), 1)
    second = rect(SHAPE, slice(10, 18), slice(20, 23), 1)
    sops = {"1.2.276.0.7230010.3.1.4.8323329.1000.1517875165.878027": [encode_rle(first), encode_rle(second)],
            "1.2.276.0.7230010.3.1.4.8323329.1001.1517875165.878028": ["-1"]}
    for k, sop in enumerate([*sops, "1.2.276.0.7230010.3.1.4.8323329.1002.1517875165.878029"]):
        write_dicom_radiograph(release / "dicom-images-train" / f"1.2.{k}" / f"1.2.{k}.1" / f"{sop}.dcm", ramp(), sop,
                               spacing=(0.168, 0.143))
    with open(release / "train-rle.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", " EncodedPixels"])
        for sop, rows in sops.items():
            writer.writerows([sop, f" {row}"] for row in rows)
    png = release / "siim-acr-pneumothorax"
    save(png / "png_images" / "0_train_1_.png", ramp())
    save(png / "png_masks" / "0_train_1_.png", rect(SHAPE, slice(1, 5), slice(1, 5)))
    (png / "stage_1_train_images.csv").write_text("new_filename,ImageId,has_pneumo\n0_train_1_.png,x,1\n")

    out = ingest(cli, "siim_acr_pneumothorax", release)
    assert "3 ingested, 0 unchanged, 0 quarantined" in out, out
    positive, negative = sops
    assert np.array_equal(mask_of(data_root, "siim_acr_pneumothorax", positive), first | second)
    meta = stored(data_root, "siim_acr_pneumothorax", positive).attrs["samatlas"]
    assert meta["spacing"] == pytest.approx([1.0, 0.168, 0.143]) and meta["spacing_from_file"] is True
    found = objects(data_root, "siim_acr_pneumothorax")
    assert found[(positive, 1)][:4] == ("pneumothorax", "pleura", 24 + 24, 2)
    assert not [k for k in found if k[0] == negative] and statuses(data_root, "siim_acr_pneumothorax")[negative] == "ok"
    assert found[("0_train_1_", 1)][2] == 16
    png_meta = stored(data_root, "siim_acr_pneumothorax", "0_train_1_").attrs["samatlas"]
    assert png_meta["spacing_from_file"] is False


@pytest.mark.slow
def test_abdomenus_colour_labels_real_and_synthetic(cli, data_root: Path, source: Path):
    top = source / "abdominal_US" / "abdominal_US"
    colours = {v: c for c, v in ABDOMENUS_COLOURS.items()}
    synthetic = np.full((*SHAPE, 3), 10, np.uint8)  # near-black background of the simulated images
    synthetic[2:8, 2:10] = colours[1]  # liver
    synthetic[12:18, 4:8] = colours[2]  # kidney
    save(top / "AUS" / "images" / "train" / "a1.png", ramp())
    save(top / "AUS" / "annotations" / "train" / "a1.png", synthetic)
    real = np.zeros((*SHAPE, 4), np.uint8)
    real[..., :3] = (77, 200, 13)  # colour under fully transparent pixels: background
    real[3:9, 10:20] = (*colours[8], 255)  # spleen
    save(top / "RUS" / "images" / "test" / "r1.png", ramp(rgb=True))
    save(top / "RUS" / "annotations" / "test" / "r1.png", real)
    save(top / "RUS" / "images" / "train" / "r2.png", ramp())  # unlabelled real image: not a case
    stray = synthetic.copy()
    stray[0:2, 0:2] = (123, 45, 67)
    save(top / "RUS" / "images" / "test" / "r3.png", ramp())
    save(top / "RUS" / "annotations" / "test" / "r3.png", stray)
    out = ingest(cli, "abdomenus", source)
    assert "2 ingested, 0 unchanged, 1 quarantined" in out, out
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'rus-test-r3'")[0][0]
    assert "r3.png" in reason and "(123, 45, 67)" in reason
    subsets = dict(query(data_root, "SELECT case_id, subset FROM cases WHERE status = 'ok'"))
    assert subsets == {"aus-train-a1": "synthetic", "rus-test-r1": "real"}
    found = objects(data_root, "abdomenus")
    assert found[("aus-train-a1", 1)][:3] == ("liver", "liver", 48)
    assert found[("aus-train-a1", 2)][:3] == ("kidney", "kidney", 24)
    assert found[("rus-test-r1", 8)][:3] == ("spleen", "spleen", 60) and len(found) == 3
    assert stored(data_root, "abdomenus", "rus-test-r1")["image"].shape == (3, 1, *SHAPE)
    assert stored(data_root, "abdomenus", "aus-train-a1")["image"].shape == (1, 1, *SHAPE)


@pytest.mark.slow
def test_busi_names_with_spaces_and_several_masks(cli, data_root: Path, source: Path):
    top = source / "Dataset_BUSI_with_GT"
    save(top / "benign" / "benign (1).png", ramp(rgb=True))
    save(top / "benign" / "benign (1)_mask.png", rect(SHAPE, slice(2, 6), slice(2, 8)))
    save(top / "benign" / "benign (1)_mask_1.png", rect(SHAPE, slice(10, 14), slice(18, 26)))
    save(top / "malignant" / "malignant (10).png", ramp())
    save(top / "malignant" / "malignant (10)_mask.png", np.repeat(rect(SHAPE, slice(5, 15), slice(5, 10))[..., None], 3, -1))
    save(top / "normal" / "normal (3).png", ramp())
    save(top / "normal" / "normal (3)_mask.png", np.zeros(SHAPE, np.uint8))
    junk(top / "benign", "benign (1).png")
    out = ingest(cli, "busi", source)
    assert "3 ingested, 0 unchanged, 0 quarantined" in out, out
    assert dict(query(data_root, "SELECT case_id, subset FROM cases")) == {
        "benign-1": "benign", "malignant-10": "malignant", "normal-3": "normal"}
    found = objects(data_root, "busi")
    assert found[("benign-1", 1)][:4] == ("benign-tumour", "breast", 24 + 32, 2)  # two mask files OR-ed
    assert found[("malignant-10", 1)][:3] == ("malignant-tumour", "breast", 50)
    assert len(found) == 2  # the normal image is a case without objects
    assert stored(data_root, "busi", "benign-1")["image"].shape == (3, 1, *SHAPE)
    sources = query(data_root, "SELECT source_files FROM cases WHERE case_id = 'benign-1'")[0][0]
    assert any(s.endswith("benign (1)_mask_1.png") for s in sources)


def _camus_label() -> np.ndarray:
    label = rect(SHAPE, slice(2, 10), slice(4, 12), 1)
    rect(SHAPE, slice(2, 10), slice(12, 14), 2, into=label)
    return rect(SHAPE, slice(12, 18), slice(4, 12), 3, into=label)


@pytest.mark.slow
@pytest.mark.parametrize("release", ["2019-mhd", "2023-nifti"])
def test_camus_both_releases(cli, data_root: Path, source: Path, release: str):
    if release == "2019-mhd":
        folder, suffix = source / "training" / "patient0001", ".mhd"
        spacing = (0.154, 0.308)
        folder.mkdir(parents=True)
        (folder / "Info_2CH.cfg").write_text("ED: 1\nES: 14\nNbFrame: 18\nSex: M\nImageQuality: Good\n")
        write_itk(source / "testing" / "patient0451" / "patient0451_2CH_ED.mhd", ramp(), spacing)  # no _gt
    else:
        folder, suffix = source / "database_nifti" / "patient0001", ".nii.gz"
        spacing = (0.31, 0.31)
        write_itk(folder / f"patient0001_2CH_half_sequence{suffix}", np.stack([ramp()] * 3), (*spacing, 1.0))
        (source / "database_split").mkdir()
        (source / "database_split" / "subgroup_training.txt").write_text("patient0001\n")
    for view in ("2CH", "4CH"):
        for phase in ("ED", "ES"):
            write_itk(folder / f"patient0001_{view}_{phase}{suffix}", ramp(), spacing)
            write_itk(folder / f"patient0001_{view}_{phase}_gt{suffix}", _camus_label(), spacing)
    out = ingest(cli, "camus", source)
    assert "4 ingested, 0 unchanged, 0 quarantined" in out, out
    cases = dict(query(data_root, "SELECT case_id, subset FROM cases"))
    assert cases == {f"patient0001-{v}-{p}": release for v in ("2ch", "4ch") for p in ("ed", "es")}
    meta = stored(data_root, "camus", "patient0001-4ch-es").attrs["samatlas"]
    assert meta["spacing"] == pytest.approx([1.0, spacing[1], spacing[0]]) and meta["spacing_from_file"] is True
    found = objects(data_root, "camus")
    assert found[("patient0001-2ch-ed", 1)][:3] == ("left-ventricle", "heart", 64)
    assert found[("patient0001-2ch-ed", 2)][:3] == ("left-ventricle-myocardium", "heart", 16)
    assert found[("patient0001-2ch-ed", 3)][:3] == ("left-atrium", "heart", 48)


@pytest.mark.slow
def test_covid19_radiography_masks_of_another_size(cli, data_root: Path, source: Path):
    top = source / "COVID-19_Radiography_Dataset"
    image = ramp((30, 30))
    small_mask = rect((24, 24), slice(4, 20), slice(2, 10))  # 299 vs 256 in the release: same aspect
    for folder, stem in (("COVID", "COVID-1"), ("Viral Pneumonia", "Viral Pneumonia-7"), ("Lung_Opacity", "Lung_Opacity-2")):
        save(top / folder / "images" / f"{stem}.png", image)
        save(top / folder / "masks" / f"{stem}.png", small_mask)
    save(top / "Normal" / "images" / "Normal-1.png", image)
    save(top / "Normal" / "masks" / "Normal-1.png", rect((24, 30), slice(4, 20), slice(2, 10)))  # other aspect
    (top / "COVID.metadata.xlsx").write_bytes(b"PK\x03\x04 not read")
    out = ingest(cli, "covid19_radiography", source)
    assert "3 ingested, 0 unchanged, 1 quarantined" in out, out
    reason = query(data_root, "SELECT reason FROM cases WHERE case_id = 'normal-1'")[0][0]
    assert "Normal-1.png" in reason and "aspect ratios differ" in reason
    assert dict(query(data_root, "SELECT case_id, subset FROM cases WHERE status = 'ok'")) == {
        "covid-1": "covid", "viral-pneumonia-7": "viral-pneumonia", "lung_opacity-2": "lung-opacity"}
    mask = mask_of(data_root, "covid19_radiography", "covid-1")
    assert mask.shape == (30, 30)
    assert objects(data_root, "covid19_radiography")[("covid-1", 1)][:3] == ("lungs", "lung", int(mask.sum()))
    assert 20 * 10 - 30 <= int(mask.sum()) <= 20 * 10 + 30  # 16x8 scaled by 30/24, nearest neighbour


@pytest.mark.slow
def test_covid_qu_ex_nested_folders_with_spaces(cli, data_root: Path, source: Path):
    lung = source / "Lung Segmentation Data" / "Lung Segmentation Data"
    infection = source / "Infection Segmentation Data" / "Infection Segmentation Data"
    lungs = rect(SHAPE, slice(2, 18), slice(2, 12))
    save(lung / "Train" / "COVID-19" / "images" / "covid_1.png", ramp())
    save(lung / "Train" / "COVID-19" / "lung masks" / "covid_1.png", lungs)
    save(lung / "Val" / "Non-COVID" / "images" / "non_COVID (12).png", ramp())
    save(lung / "Val" / "Non-COVID" / "lung masks" / "non_COVID (12).png", lungs)
    for klass, stem, lesion in (("COVID-19", "covid_1", rect(SHAPE, slice(4, 8), slice(4, 8))),
                                ("Normal", "Normal (5)", np.zeros(SHAPE, np.uint8))):
        folder = infection / "Test" / klass
        save(folder / "images" / f"{stem}.png", ramp())
        save(folder / "lung masks" / f"{stem}.png", lungs)
        save(folder / "infection masks" / f"{stem}.png", lesion)
    out = ingest(cli, "covid_qu_ex", source)
    assert "4 ingested, 0 unchanged, 0 quarantined" in out, out
    assert dict(query(data_root, "SELECT case_id, subset FROM cases")) == {
        "lung-train-covid-19-covid_1": "lung", "lung-val-non-covid-non_covid-12": "lung",
        "infection-test-covid-19-covid_1": "infection", "infection-test-normal-normal-5": "infection"}
    found = objects(data_root, "covid_qu_ex")
    assert found[("lung-train-covid-19-covid_1", 1)][:3] == ("lungs", "lung", 160)
    assert found[("infection-test-covid-19-covid_1", 1)][:3] == ("covid-19-infection", "lung", 16)
    assert len(found) == 3  # the normal infection case has an empty mask


@pytest.mark.slow
def test_qata_mask_prefix(cli, data_root: Path, source: Path):
    top = source / "QaTa-COV19-v2"
    save(top / "Train Set" / "Images" / "covid_1.png", ramp())
    save(top / "Train Set" / "Ground-truths" / "mask_covid_1.png", rect(SHAPE, slice(3, 9), slice(3, 9)))
    save(top / "Test Set" / "Images" / "sub-S09233_ses-E18633_run-1.png", ramp())
    save(top / "Test Set" / "Ground-truths" / "mask_sub-S09233_ses-E18633_run-1.png", rect(SHAPE, slice(0, 2), slice(0, 5)))
    out = ingest(cli, "qata_cov19", source)
    assert "2 ingested" in out, out
    found = objects(data_root, "qata_cov19")
    assert found[("train-covid_1", 1)][:3] == ("covid-19-infection", "lung", 36)
    assert found[("test-sub-s09233_ses-e18633_run-1", 1)][2] == 10


@pytest.mark.slow
def test_ct2us_masks_binarised_at_128(cli, data_root: Path, source: Path):
    mask = rect(SHAPE, slice(2, 10), slice(2, 10), 200)
    rect(SHAPE, slice(12, 18), slice(12, 20), 100, into=mask)  # below 128: background
    save(source / "slice" / "slice" / "1001.png", ramp())
    save(source / "mask" / "mask" / "1001.png", mask)
    out = ingest(cli, "ct2us", source)
    assert "1 ingested" in out, out
    assert objects(data_root, "ct2us") == {("1001", 1): ("kidney", "kidney", 64, 1, "us")}
    assert dict(query(data_root, "SELECT case_id, subset FROM cases")) == {"1001": "synthetic"}


@pytest.mark.slow
def test_polypgen_jpeg_masks_thresholded(cli, data_root: Path, source: Path):
    top = source / "PolypGen2021_MultiCenterData_v3"
    shape = (32, 40)
    polyp = rect(shape, slice(8, 24), slice(8, 24))
    save(top / "data_C1" / "images_C1" / "100H0050.jpg", ramp(shape, rgb=True), quality=90)
    save(top / "data_C1" / "masks_C1" / "100H0050_mask.jpg", polyp, quality=75)
    (top / "data_C1" / "bbox_C1").mkdir()
    (top / "data_C1" / "bbox_C1" / "100H0050.txt").write_text("polyp 8 8 23 23\n")
    seq = top / "sequenceData" / "positive" / "seq1"
    save(seq / "images_seq1" / "C1_seq1_0001.jpg", ramp(shape, rgb=True))
    save(seq / "masks_seq1" / "C1_seq1_0001_mask.jpg", polyp)
    save(top / "sequenceData" / "negativeOnly" / "seq1_neg" / "images_seq1_neg" / "n0001.jpg", ramp(shape, rgb=True))
    save(top / "imagesAll_positive" / "100H0050.jpg", ramp(shape, rgb=True))
    out = ingest(cli, "polypgen", source)
    assert "3 ingested, 0 unchanged, 0 quarantined" in out, out
    assert dict(query(data_root, "SELECT case_id, subset FROM cases")) == {
        "c1-100h0050": "single-frame", "seq1-c1_seq1_0001": "sequence", "neg-seq1_neg-n0001": "negative"}
    found = objects(data_root, "polypgen")
    target, anatomy, area = found[("c1-100h0050", 1)][:3]
    assert (target, anatomy) == ("polyp", "colon") and abs(area - 256) <= 8  # JPEG edges, thresholded
    assert set(np.unique(mask_of(data_root, "polypgen", "c1-100h0050"))) == {0, 1}
    assert stored(data_root, "polypgen", "c1-100h0050")["image"].shape == (3, 1, *shape)
    assert len(found) == 2


@pytest.mark.slow
def test_fh_ps_aop_mha_pairs(cli, data_root: Path, source: Path):
    top = source / "Pubic Symphysis-Fetal Head Segmentation and Angle of Progression"
    label = rect(SHAPE, slice(2, 6), slice(2, 8), 1)
    rect(SHAPE, slice(8, 18), slice(10, 26), 2, into=label)
    channels = np.stack([ramp(), ramp() // 2, ramp() // 3])  # three slices = the frame's three channels
    for name in ("00001", "03744"):
        write_itk(top / "image_mha" / f"{name}.mha", channels, (0.5, 0.5, 1.0))
        write_itk(top / "label_mha" / f"{name}.mha", label, (0.5, 0.5))
    out = ingest(cli, "fh_ps_aop", source)
    assert "2 ingested" in out, out
    case = stored(data_root, "fh_ps_aop", "03744")
    assert case["image"].shape == (3, 1, *SHAPE)
    assert np.array_equal(case["image"][1, 0], ramp() // 2)
    assert case.attrs["samatlas"]["spacing"] == pytest.approx([1.0, 0.5, 0.5])
    found = objects(data_root, "fh_ps_aop")
    assert found[("03744", 1)][:3] == ("pubic-symphysis", "pelvis", 24)
    assert found[("03744", 2)][:3] == ("fetal-head", "fetus", 160)


def test_rle_is_relative_column_major_and_rows_are_or_ed():
    top = rect(SHAPE, slice(0, 3), slice(0, 1), 1)  # down the first column: flat indices 0..2
    other = rect(SHAPE, slice(5, 7), slice(2, 4), 1)
    rows = ["0 3", encode_rle(other), "-1"]
    assert np.array_equal(decode_rle(rows, SHAPE, Path("x.dcm")), top | other)
    with pytest.raises(CaseError, match="leaves the 28x20 image"):
        decode_rle(["555 10"], SHAPE, Path("x.dcm"))


def test_masks_of_another_size_fit_only_with_the_same_aspect():
    mask = rect((10, 14), slice(0, 5), slice(0, 7), 1)
    assert fit_to(mask, (20, 28), Path("m.png")).sum() == 4 * mask.sum()
    with pytest.raises(CaseError, match="10x10 cannot be matched to image size 28x20"):
        fit_to(np.zeros((10, 10), np.uint8), (20, 28), Path("m.png"))


def test_undocumented_grey_levels_and_colours_are_refused():
    with pytest.raises(CaseError, match=r"grey levels \[64\]"):
        relabel(np.array([[0, 128], [255, 64]], np.uint8), REFUGE_LEVELS, Path("g0001.bmp"))
    rgb = np.array([[[100, 0, 100], [104, 3, 97]], [[9, 9, 9], [0, 0, 0]]], np.uint8)
    labels = labels_from_colours(rgb, np.ones((2, 2), bool), ABDOMENUS_COLOURS, Path("a.png"))
    assert labels.tolist() == [[1, 1], [0, 0]]  # within tolerance of liver; near-black is background
