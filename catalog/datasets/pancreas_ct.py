"""TCIA Pancreas-CT (NIH): contrast-enhanced abdominal CT with a manual pancreas label.

Images are DICOM, one series per patient: ``Pancreas-CT/PANCREAS_NNNN/<study>/<series>/1-NNN.dcm``
(NBIA download); labels are NIfTI in ``TCIA_pancreas_labels-02-05-2017/labelNNNN.nii.gz`` (1 =
pancreas). The NIfTI labels are stored in another axis order than the DICOM stack (nnU-Net
reoriented both before pairing them), so each label is put in the series' axis order and must then
lie on its grid exactly. Patients 25 and 70 were withdrawn as duplicates of patient 2: 80 remain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_with_suffix, is_junk
from tasks.formats.dicom_readers import read_dicom

DUPLICATES = {25, 70}  # withdrawn: the same scans as PANCREAS_0002
HINT = "a folder holding Pancreas-CT/ (the NBIA download) and the unzipped TCIA_pancreas_labels-02-05-2017/"


@dataset_card(
    id="pancreas_ct",
    name="Pancreas-CT (NIH, TCIA)",
    dimensionality=3,
    subsets=(Subset(modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"),
                    labels={1: Target(name="pancreas", anatomy="pancreas")}),),
    source=ManualSource(
        register_at="https://wiki.cancerimagingarchive.net/display/Public/Pancreas-CT "
                    "(NBIA Data Retriever for the images; the label zip is on the same page)",
        what_to_pass=HINT,
    ),
    license="TCIA data usage policy, CC BY 3.0 (not verified)",
    citation="Roth HR, Farag A, Turkbey EB, Lu L, Liu J, Summers RM. Data From Pancreas-CT. The Cancer Imaging "
             "Archive 2016. doi:10.7937/K9/TCIA.2016.tNB1kqBU",
    layout="Pancreas-CT/PANCREAS_NNNN/<study>/<series>/*.dcm + TCIA_pancreas_labels-02-05-2017/labelNNNN.nii.gz",
    reader=read_dicom,
    cases=80,  # 82 ids, 25 and 70 withdrawn
)
def pancreas_ct(root: Path) -> Iterator[CaseFiles]:
    """Every ``labelNNNN.nii.gz`` with the DICOM files of patient folder ``PANCREAS_NNNN``."""
    labels = {int(p.name[5:9]): p for p in root.rglob("label[0-9][0-9][0-9][0-9].nii.gz") if not is_junk(p)}
    patients = {p.name: p for p in root.rglob("PANCREAS_[0-9][0-9][0-9][0-9]") if p.is_dir() and not is_junk(p)}
    found = 0
    for number in sorted(set(labels) - DUPLICATES):
        folder = patients.get(f"PANCREAS_{number:04d}")
        dicoms = files_with_suffix(folder, [".dcm"], recursive=True) if folder else []
        if dicoms:
            found += 1
            yield CaseFiles(folder.name, tuple(dicoms), labels[number])
    if not found:
        raise ValueError(f"{root}: no labelNNNN.nii.gz with a PANCREAS_NNNN DICOM folder; pass {HINT}")
