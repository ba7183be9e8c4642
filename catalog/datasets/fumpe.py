"""FUMPE: CT pulmonary angiography with pulmonary-embolism masks (Ferdowsi University of Mashhad).

``CT_scans/PATNNN/*.dcm`` (35 patients, 8,792 slices) and ``GroundTruth/PATNNN.mat`` whose
variable ``Mask`` is (rows, columns, slices) with the slices in the DICOM files' numbering, not
in position order; each plane is placed at its DICOM slice's position. 1 = embolus. Some patients
reportedly have no embolus in their mask; they ingest with no objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_with_suffix, find_dirs, is_junk
from tasks.formats.matlab import read_fumpe

HINT = "a folder holding CT_scans/ (PATNNN folders of .dcm files) and GroundTruth/ (PATNNN.mat)"


@dataset_card(
    id="fumpe",
    name="FUMPE: CTPA images for computer-aided detection of pulmonary embolism",
    dimensionality=3,
    subsets=(Subset(modality="ct", region="chest", intensity=CTWindow(level=100, width=700),
                    labels={1: Target(name="pulmonary-embolism", anatomy="lung")}),),
    source=ManualSource(
        register_at="https://figshare.com/collections/FUMPE/4107803 (open, no account; also Kaggle "
                    "andrewmvd/pulmonary-embolism-in-ct-images)",
        what_to_pass=HINT,
    ),
    license="CC BY 4.0",
    citation="Masoudi M, Pourreza HR, Saadatmand-Tarzjan M, et al. A new dataset of computed-tomography "
             "angiography images for computer-aided detection of pulmonary embolism. Sci Data 2018;5:180180.",
    layout="CT_scans/PATNNN/*.dcm + GroundTruth/PATNNN.mat (Mask: rows x columns x slices in instance order)",
    reader=read_fumpe,
    cases=35,
)
def fumpe(root: Path) -> Iterator[CaseFiles]:
    """Every ``GroundTruth/PATNNN.mat`` with the DICOM files of ``CT_scans/PATNNN``."""
    scans = {p.name: p for base in find_dirs(root, "CT_scans") for p in base.iterdir() if p.is_dir() and not is_junk(p)}
    found = 0
    for truth in find_dirs(root, "GroundTruth"):
        for mat in sorted(truth.glob("*.mat")):
            dicoms = files_with_suffix(scans[mat.stem], [".dcm"], recursive=True) if mat.stem in scans else []
            if dicoms and not is_junk(mat):
                found += 1
                yield CaseFiles(mat.stem, tuple(dicoms), mat)
    if not found:
        raise ValueError(f"{root}: no GroundTruth/PATNNN.mat with a CT_scans/PATNNN folder; pass {HINT}")
