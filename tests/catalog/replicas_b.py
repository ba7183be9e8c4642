"""Tiny synthetic replicas of nine volumetric releases, in their official layouts and formats.

Each builder writes the file names, folder nesting, encodings and quirks of one official release
(MSD, ACDC, M&Ms, AbdomenCT-1K, AMOS22, KiTS23, TotalSegmentator v2, BraTS 2023, HaN-Seg) with
4 x 12 x 16 voxel volumes of made-up values. They test layouts and plumbing, not segmentation
quality: nothing in them is a real scan.

Unless a builder says otherwise, volumes are stored the way nibabel-written NIfTI files usually
come out (x to the right, y to the front: direction diag(-1, -1, 1) in ITK's LPS terms), so
ingest's reorientation to LPS flips y and x: see ``as_lps``.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (4, 12, 16)  # numpy (z, y, x)
SPACING = (0.8, 0.7, 3.0)  # ITK (x, y, z) mm
STORE_SPACING = [3.0, 0.7, 0.8]  # what the store reports, (z, y, x)
ORIGIN = (12.5, -40.0, 7.0)
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def blocks(values: Iterable[int], shape: Sequence[int] = SHAPE) -> np.ndarray:
    """A (z, y, x) label array with each value as its own 3 x 2 block: the i-th on slice i % z."""
    label = np.zeros(shape, np.uint8)
    for i, value in enumerate(values):
        x0 = 2 * (i // shape[0])
        label[i % shape[0], 1:4, x0:x0 + 2] = value
    return label


def scan(offset: int, shape: Sequence[int] = SHAPE) -> np.ndarray:
    """A (z, y, x) int16 'scan' whose values start at ``offset``, so channels and frames are told apart."""
    return (offset + np.arange(np.prod(shape)) % 50).reshape(shape).astype(np.int16)


def as_lps(array: np.ndarray) -> np.ndarray:
    """A RAS-stored (z, y, x) array as the store holds it after reorientation to LPS."""
    return array[:, ::-1, ::-1]


def image(array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=RAS) -> sitk.Image:
    """A 3D ITK image of ``array`` (z, y, x) on the replica grid (or the geometry given)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def write(img: sitk.Image, path: Path) -> Path:
    """Write ``img`` (NIfTI, NRRD, ...) by extension, compressed, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)
    return path


def write_4d(arrays: Sequence[np.ndarray], path: Path) -> Path:
    """A 4D NIfTI (x, y, z, n) stacking 3D arrays on the 4th axis, as MSD channels and cine frames are stored."""
    return write(sitk.JoinSeries([image(a) for a in arrays]), path)


def junk(folder: Path, *names: str) -> None:
    """macOS resource forks and Finder files, as real archives carry them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\x00\x05\x16\x07 not an image")


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` with its own name as the top-level entry (as the releases' zips are made)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return archive


# ---- MSD -------------------------------------------------------------------------------------

MSD_LABELS = {"BRATS_001": [1, 2, 3], "BRATS_002": [2, 3], "prostate_00": [1, 2], "hippocampus_001": [1, 2], "lung_001": [1]}
MSD_TASKS = {
    "Task01_BrainTumour": (("BRATS_001", "BRATS_002"), 4),
    "Task04_Hippocampus": (("hippocampus_001",), 1),
    "Task05_Prostate": (("prostate_00",), 2),
    "Task06_Lung": (("lung_001",), 1),
}


def msd(root: Path) -> Path:
    """``Decathlon/TaskXX_Name/{imagesTr,labelsTr,imagesTs}`` + dataset.json for four tasks.

    BrainTumour (4 channels) and Prostate (2) images are 4D with channel c valued from c * 1000;
    each task folder carries ``._`` resource forks beside real files, and imagesTs is unlabelled.
    """
    base = root / "Decathlon"
    for task, (cases, channels) in MSD_TASKS.items():
        folder = base / task
        for case in cases:
            arrays = [scan(1000 * c) for c in range(channels)]
            if channels > 1:
                write_4d(arrays, folder / "imagesTr" / f"{case}.nii.gz")
            else:
                write(image(arrays[0]), folder / "imagesTr" / f"{case}.nii.gz")
            write(image(blocks(MSD_LABELS[case])), folder / "labelsTr" / f"{case}.nii.gz")
            junk(folder / "imagesTr", f"._{case}.nii.gz")
            junk(folder / "labelsTr", f"._{case}.nii.gz")
        write(image(scan(0)), folder / "imagesTs" / f"{cases[0].split('_')[0]}_999.nii.gz")
        (folder / "dataset.json").write_text(json.dumps({"name": task.split("_")[1], "training": [
            {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases]}))
    junk(base, "._Task01_BrainTumour", ".DS_Store")
    return base


# ---- ACDC ------------------------------------------------------------------------------------

ACDC_PATIENTS = {"training/patient001": (1, 12), "testing/patient101": (1, 9)}  # ED, ES (1-based)
ACDC_UNLABELLED = "testing/patient102"  # frames and Info.cfg but no _gt files, as the 2017 testing set
ACDC_LABELS = {"ED": [1, 2, 3], "ES": [3, 2, 1]}


def acdc(root: Path) -> Path:
    """``ACDC.zip`` -> ``ACDC/database/{training,testing}/patientNNN/`` with the 4D cine, the ED and ES
    frames (image values from 100 x frame) with ``_gt`` files, and ``Info.cfg``; one testing patient
    has no ``_gt`` files."""
    base = root / "ACDC"
    for rel, (ed, es) in ACDC_PATIENTS.items():
        folder = base / "database" / rel
        patient = folder.name
        write_4d([scan(100 * t) for t in range(1, 14)], folder / f"{patient}_4d.nii.gz")
        for phase, frame in (("ED", ed), ("ES", es)):
            write(image(scan(100 * frame)), folder / f"{patient}_frame{frame:02d}.nii.gz")
            write(image(blocks(ACDC_LABELS[phase])), folder / f"{patient}_frame{frame:02d}_gt.nii.gz")
        (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
        (folder / "MANDATORY_CITATION.md").write_text("cite Bernard et al. 2018\n")
    unlabelled = base / "database" / ACDC_UNLABELLED
    for frame in (1, 10):
        write(image(scan(100 * frame)), unlabelled / f"{unlabelled.name}_frame{frame:02d}.nii.gz")
    (unlabelled / "Info.cfg").write_text("ED: 1\nES: 10\nGroup: NOR\nHeight: 170.0\nNbFrame: 20\nWeight: 70.0\n")
    return zip_folder(base, root / "ACDC.zip")


# ---- M&Ms ------------------------------------------------------------------------------------

MNMS_FRAMES = 6
MNMS_SUBJECTS = {  # folder, code -> (ED, ES) in the CSV, 0-based; the gt is labelled at these frames
    ("Training/Labeled", "A0S9V9"): (0, 3),
    ("Validation", "B2C3D4"): (4, 1),
    ("Testing", "E5F6G7"): (0, 2),
}
MNMS_WRONG_CSV = "E5F6G7"  # its CSV row says ES = 5, but its gt is labelled at frame 2
MNMS_LABELS = {"ED": [1, 2, 3], "ES": [1, 3]}


def mnms(root: Path) -> Path:
    """``OpenDataset/`` with 4D ``<code>_sa.nii.gz`` (frame t valued from 100 t) and 4D ``_sa_gt`` labelled
    only at ED and ES, an unlabelled vendor-C subject, and the information CSV (with pandas' unnamed
    index column)."""
    base = root / "OpenDataset"
    rows = []
    for (folder, code), (ed, es) in MNMS_SUBJECTS.items():
        subject = base / folder / code
        write_4d([scan(100 * t) for t in range(MNMS_FRAMES)], subject / f"{code}_sa.nii.gz")
        gt = [np.zeros(SHAPE, np.uint8) for _ in range(MNMS_FRAMES)]
        gt[ed], gt[es] = blocks(MNMS_LABELS["ED"]), blocks(MNMS_LABELS["ES"])
        write_4d(gt, subject / f"{code}_sa_gt.nii.gz")
        rows.append((code, ed, 5 if code == MNMS_WRONG_CSV else es))
    write_4d([scan(0)] * MNMS_FRAMES, base / "Training/Unlabeled/C0X1Y2/C0X1Y2_sa.nii.gz")
    rows.append(("C0X1Y2", 0, 3))
    with open(base / "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["", "External code", "VendorName", "Vendor", "Centre", "ED", "ES", "Age", "Pathology", "Sex"])
        for i, (code, ed, es) in enumerate(rows):
            out.writerow([i, code, "Siemens", code[0], 1, ed, es, 60, "NOR", "M"])
    return base


# ---- AbdomenCT-1K ----------------------------------------------------------------------------

ABDOMEN_LABELS = {"Case_00001": [1, 2, 3, 4], "Case_00401": [4, 1]}


def abdomenct1k(root: Path) -> Path:
    """Image parts 1-3 and ``Mask/`` side by side: Case_00001 (part 1), Case_00401 (part 2), an image with
    no mask (Case_01001, part 3) and a mask whose image is missing (Case_00801)."""
    base = root / "AbdomenCT-1K"
    for case, values in ABDOMEN_LABELS.items():
        part = 1 if case == "Case_00001" else 2
        write(image(scan(-100)), base / f"AbdomenCT-1K-ImagePart{part}" / f"{case}_0000.nii.gz")
        write(image(blocks(values)), base / "Mask" / f"{case}.nii.gz")
    write(image(scan(-100)), base / "AbdomenCT-1K-ImagePart3" / "Case_01001_0000.nii.gz")
    write(image(blocks([1])), base / "Mask" / "Case_00801.nii.gz")
    return base


# ---- AMOS22 ----------------------------------------------------------------------------------

AMOS_LABELS = {"amos_0001": [1, 8, 9, 15], "amos_0008": [11, 12], "amos_0507": [1, 6, 13]}
AMOS_SPLIT = {"amos_0001": "Tr", "amos_0008": "Va", "amos_0507": "Tr"}


def amos22(root: Path) -> Path:
    """``amos22/{imagesTr,labelsTr,imagesVa,labelsVa,imagesTs}`` + dataset.json (with its "arota" spelling):
    two CT cases (numbers <= 500), one MR case (0507) and an unlabelled test image."""
    base = root / "amos22"
    for case, values in AMOS_LABELS.items():
        split = AMOS_SPLIT[case]
        write(image(scan(-200 if int(case[-4:]) <= 500 else 0)), base / f"images{split}" / f"{case}.nii.gz")
        write(image(blocks(values)), base / f"labels{split}" / f"{case}.nii.gz")
    write(image(scan(0)), base / "imagesTs" / "amos_0002.nii.gz")
    names = ["background", "spleen", "right kidney", "left kidney", "gall bladder", "esophagus", "liver", "stomach",
             "arota", "postcava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum", "bladder",
             "prostate/uterus"]
    (base / "dataset.json").write_text(json.dumps({"name": "AMOS", "labels": dict(enumerate(map(str, names)))}))
    return base


# ---- KiTS23 ----------------------------------------------------------------------------------

KITS_LABELS = {"case_00000": [1, 2, 3], "case_00001": [1, 1, 2]}
# KiTS stores the axial axis first: index axis 0 runs inferior (-z), axis 1 posterior (+y),
# axis 2 left (+x); spacing (slice, row, column).
KITS_DIRECTION = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0)
KITS_SPACING = (3.0, 0.7, 0.8)


def kits_source(values: Sequence[int]) -> np.ndarray:
    """The numpy array of a KiTS-style label file: (x, y, slice) from ITK's point of view."""
    return np.ascontiguousarray(np.transpose(blocks(values), (2, 1, 0))[:, :, ::-1])


def kits23(root: Path) -> Path:
    """The cloned ``kits23/`` repository: ``dataset/case_NNNNN/{imaging,segmentation}.nii.gz`` + ``instances/``,
    with KiTS's slice-first axis order."""
    base = root / "kits23"
    for case, values in KITS_LABELS.items():
        folder = base / "dataset" / case
        geometry = {"spacing": KITS_SPACING, "direction": KITS_DIRECTION}
        write(image(np.ascontiguousarray(np.transpose(scan(-100), (2, 1, 0))[:, :, ::-1]), **geometry), folder / "imaging.nii.gz")
        write(image(kits_source(values), **geometry), folder / "segmentation.nii.gz")
        write(image((kits_source(values) == 1).astype(np.uint8), **geometry),
              folder / "instances" / "kidney_instance-1_annotation-1.nii.gz")
    (base / "README.md").write_text("# KiTS23\n")
    return base


# ---- TotalSegmentator v2 ---------------------------------------------------------------------

def totalsegmentator(root: Path, classes: Sequence[str], painted: dict[str, dict[str, np.ndarray]], missing: str) -> Path:
    """``Totalsegmentator_dataset_v201/sNNNN/{ct.nii.gz, segmentations/<class>.nii.gz}`` + ``meta.csv``;
    every class has a file (empty unless ``painted``), except ``missing`` in the last case."""
    base = root / "Totalsegmentator_dataset_v201"
    empty = np.zeros(SHAPE, np.uint8)
    cases = sorted(painted)
    for case in cases:
        write(image(scan(-500)), base / case / "ct.nii.gz")
        for name in classes:
            if case == cases[-1] and name == missing:
                continue
            write(image(painted[case].get(name, empty)), base / case / "segmentations" / f"{name}.nii.gz")
    (base / "meta.csv").write_text("image_id;age;gender;institute;study_type;split\n"
                                   + "".join(f"{c};60;m;A;ct abdomen;train\n" for c in cases))
    return base


# ---- BraTS 2023 ------------------------------------------------------------------------------

BRATS_CASES = {"GLI": ("BraTS-GLI-00000-000", [1, 2, 3]), "MEN": ("BraTS-MEN-00004-000", [2, 3])}
BRATS_OLD_CONVENTION = "BraTS-GLI-00002-000"  # labelled 1/2/4 as before 2023
BRATS_SEQUENCES = {"t1c": 2000, "t1n": 1000, "t2f": 4000, "t2w": 3000}  # value offsets


def brats2023(root: Path) -> Path:
    """Two sub-challenge folders with ``BraTS-XXX-NNNNN-NNN/<case>-{t1c,t1n,t2f,t2w,seg}.nii.gz``; one GLI
    case uses the pre-2023 ET label 4."""
    base = root / "BraTS2023"
    cases = [(s, c, v) for s, (c, v) in BRATS_CASES.items()] + [("GLI", BRATS_OLD_CONVENTION, [1, 2, 4])]
    for sub, case, values in cases:
        folder = base / f"ASNR-MICCAI-BraTS2023-{sub}-Challenge-TrainingData" / case
        for sequence, offset in BRATS_SEQUENCES.items():
            write(image(scan(offset)), folder / f"{case}-{sequence}.nii.gz")
        write(image(blocks(values)), folder / f"{case}-seg.nii.gz")
    return base


# ---- HaN-Seg ---------------------------------------------------------------------------------

HANSEG_OARS = {"case_01": ["A_Carotid_L", "Bone_Mandible", "SpinalCord"], "case_02": ["A_Carotid_L", "OpticNrv_R"]}
HANSEG_CROPPED = "Bone_Mandible"  # saved on a cropped extent, as Slicer may save a segment
HANSEG_REINDEXED = "OpticNrv_R"  # saved with LPS axes while the CT's run RAS: same voxels, other indexing


def hanseg_mask(oars: Sequence[str], oar: str) -> np.ndarray:
    """The full-grid mask of ``oar`` in a case (its block in the case's OAR list)."""
    return (blocks(range(1, len(oars) + 1)) == oars.index(oar) + 1).astype(np.uint8)


def _seg_nrrd(mask: np.ndarray, name: str, path: Path) -> None:
    """A Slicer-style single-segment ``.seg.nrrd``; the cropped OAR keeps only its bounding box."""
    img = image(mask)
    if name == HANSEG_CROPPED:
        z, y, x = (np.flatnonzero(mask.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
        start = [int(x[0]), int(y[0]), int(z[0])]
        size = [int(x[-1]) - start[0] + 1, int(y[-1]) - start[1] + 1, int(z[-1]) - start[2] + 1]
        img = sitk.RegionOfInterest(img, size, start)
    if name == HANSEG_REINDEXED:
        img = sitk.DICOMOrient(img, "LPS")
    for key, value in {"Segment0_ID": "Segment_1", "Segment0_Name": name, "Segment0_LabelValue": "1",
                       "Segment0_Layer": "0", "Segmentation_MasterRepresentation": "Binary labelmap"}.items():
        img.SetMetaData(key, value)
    write(img, path)


def hanseg(root: Path) -> Path:
    """``HaN-Seg.zip`` -> ``HaN-Seg/set_1/case_NN/`` with the CT and an unregistered MR as NRRD, one
    ``.seg.nrrd`` per OAR present (one on a cropped extent, one indexed along other axes), OAR_data.csv, patient_data.csv, README, LICENSE."""
    base = root / "HaN-Seg"
    for case, oars in HANSEG_OARS.items():
        folder = base / "set_1" / case
        write(image(scan(-300)), folder / f"{case}_IMG_CT.nrrd")
        write(image(scan(0, (6, 10, 10)), spacing=(1.0, 1.0, 4.0), origin=(0.0, 0.0, 500.0)), folder / f"{case}_IMG_MR_T1.nrrd")
        for oar in oars:
            _seg_nrrd(hanseg_mask(oars, oar), oar, folder / f"{case}_OAR_{oar}.seg.nrrd")
    (base / "set_1" / "OAR_data.csv").write_text("case,A_Carotid_L,SpinalCord\ncase_01,1,1\ncase_02,1,0\n")
    (base / "set_1" / "patient_data.csv").write_text("case,sex,age\ncase_01,M,60\ncase_02,F,55\n")
    (base / "README.md").write_text("# HaN-Seg\n")
    (base / "LICENSE").write_text("CC BY-ND 4.0\n")
    return zip_folder(base, root / "HaN-Seg.zip")
