"""TCIA CT Lymph Nodes: mediastinal and abdominal lymph nodes in CT (Roth 2014, Seff 2015).

Images are DICOM, one series per patient: ``CT Lymph Nodes/{MED,ABD}_LYMPH_NNN/<study>/<series>/*.dcm``
(90 mediastinal + 86 abdominal patients). The original annotations are node centroids
(``MED_ABD_LYMPH_ANNOTATIONS/``, not used); the later masks are NIfTI,
``MED_ABD_LYMPH_MASKS/<patient>/<patient>_mask.nii.gz``, numbering each node (values above 1
occur), so every non-zero voxel becomes the one lymph-node target. The survey lists the dataset as
mediastinum; the abdominal patients are a second subset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_with_suffix, is_junk
from tasks.formats.dicom_readers import read_dicom_binary

MASKS = "MED_ABD_LYMPH_MASKS"
HINT = f"a folder holding 'CT Lymph Nodes/' (the NBIA download) and the unzipped {MASKS}/"


@dataset_card(
    id="ct_lymph_nodes",
    name="CT Lymph Nodes (TCIA)",
    dimensionality=3,
    subsets=(
        Subset(name="mediastinum", modality="ct", region="mediastinum", intensity=CTWindow(preset="ct-soft-tissue"),
               labels={1: Target(name="mediastinal-lymph-node", anatomy="mediastinum")}),
        Subset(name="abdomen", modality="ct", region="abdomen", intensity=CTWindow(preset="ct-soft-tissue"),
               labels={1: Target(name="abdominal-lymph-node", anatomy="abdomen")}),
    ),
    source=ManualSource(
        register_at="https://wiki.cancerimagingarchive.net/display/Public/CT+Lymph+Nodes "
                    "(NBIA Data Retriever with TCIA_CT_Lymph_Nodes_06-22-2015.tcia; MED_ABD_LYMPH_MASKS.zip on the same page)",
        what_to_pass=HINT,
    ),
    license="TCIA data usage policy, CC BY 3.0 (not verified)",
    citation="Roth HR, Lu L, Seff A, et al. A new 2.5D representation for lymph node detection using random sets "
             "of deep convolutional neural network observations. MICCAI 2014, LNCS 8673:520-527. Data: "
             "doi:10.7937/K9/TCIA.2015.AQIIDCNM",
    layout="CT Lymph Nodes/{MED,ABD}_LYMPH_NNN/<study>/<series>/*.dcm + MED_ABD_LYMPH_MASKS/<patient>/<patient>_mask.nii.gz "
           "(node numbers; non-zero = lymph node)",
    reader=read_dicom_binary,
    cases=176,  # 90 mediastinal + 86 abdominal patients
)
def ct_lymph_nodes(root: Path) -> Iterator[CaseFiles]:
    """Every patient mask with the DICOM files of the patient folder of the same name."""
    patients = {
        p.name: p for p in root.rglob("*_LYMPH_[0-9][0-9][0-9]")
        if p.is_dir() and not is_junk(p) and not any(part.startswith("MED_ABD_LYMPH_") for part in p.parts)
    }
    found = 0
    for mask in sorted(root.rglob(f"{MASKS}/*/*_mask.nii.gz")):
        patient = mask.name.removesuffix("_mask.nii.gz")
        folder = patients.get(patient)
        dicoms = files_with_suffix(folder, [".dcm"], recursive=True) if folder and not is_junk(mask) else []
        if dicoms:
            found += 1
            subset = "mediastinum" if patient.startswith("MED") else "abdomen"
            yield CaseFiles(patient, tuple(dicoms), mask, subset=subset)
    if not found:
        raise ValueError(f"{root}: no {MASKS}/<patient>/<patient>_mask.nii.gz with its DICOM folder; pass {HINT}")
