"""NCI-ISBI 2013: automated segmentation of prostate structures (central gland, peripheral zone).

Images are T2-weighted axial DICOM series from two TCIA collections, PROSTATE-DIAGNOSIS (1.5 T,
endorectal coil; ``ProstateDx-01-NNNN``) and Prostate-3T (``Prostate3T-01-NNNN``), fetched with the
challenge's NBIA manifests into ``<collection>/<patient>/<study>/<series>/*.dcm``. Labels are NRRD
files named by patient in ``Training/`` (60), ``Leaderboard/`` (10) and ``Test/`` (10); patient
ProstateDx-01-0006 has a relabelled ``_correctedLabels.nrrd``, used instead of the original. The
NRRD grids differ from the DICOM stack in axis order and orientation, so labels are resampled onto
the series by nearest neighbour after checking both cover the same region. Label values: 1 central
gland, 2 peripheral zone (as commonly read; not confirmed by the organisers' page).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import files_with_suffix, find_dirs, is_junk
from tasks.formats.dicom_readers import read_dicom_resampled

SPLITS = ("Training", "Leaderboard", "Test")
CORRECTED = "_correctedLabels"
HINT = ("one folder holding the images downloaded with the challenge's NBIA manifests "
        "(PROSTATE-DIAGNOSIS/ and Prostate-3T/ patient folders) and the label folders Training/, Leaderboard/, Test/")


def _labels(root: Path) -> dict[str, Path]:
    """Patient id -> label NRRD, preferring a ``_correctedLabels`` file."""
    labels: dict[str, Path] = {}
    for split in SPLITS:
        for folder in find_dirs(root, split):
            for path in sorted(folder.glob("*.nrrd")):
                patient = path.name.removesuffix(".nrrd").removesuffix(CORRECTED)
                if not is_junk(path) and (CORRECTED in path.name or patient not in labels):
                    labels[patient] = path
    return labels


@dataset_card(
    id="nci_isbi2013",
    name="NCI-ISBI 2013: Automated Segmentation of Prostate Structures",
    dimensionality=3,
    subsets=(Subset(modality="mr", region="prostate", intensity=PercentileClip(), labels={
        1: Target(name="prostate-central-gland", anatomy="prostate"),
        2: Target(name="prostate-peripheral-zone", anatomy="prostate"),
    }),),
    source=ManualSource(
        register_at="https://wiki.cancerimagingarchive.net/display/Public/NCI-ISBI+2013+Challenge+-+Automated+"
                    "Segmentation+of+Prostate+Structures (NBIA manifests for the images; label zips on the same page)",
        what_to_pass=HINT,
    ),
    license="TCIA data usage policy, CC BY 3.0 (stated for PROSTATE-DIAGNOSIS; not verified for Prostate-3T)",
    citation="Bloch N, Madabhushi A, Huisman H, et al. NCI-ISBI 2013 Challenge: Automated Segmentation of Prostate "
             "Structures. The Cancer Imaging Archive 2015. doi:10.7937/K9/TCIA.2015.zF0vlOPv",
    layout="<collection>/<ProstateDx-01-NNNN|Prostate3T-01-NNNN>/<study>/<series>/*.dcm + "
           "{Training,Leaderboard,Test}/<patient>.nrrd (ProstateDx-01-0006_correctedLabels.nrrd replaces its original)",
    reader=read_dicom_resampled,
    cases=80,  # 60 training + 10 leaderboard + 10 test
)
def nci_isbi2013(root: Path) -> Iterator[CaseFiles]:
    """Every label NRRD with the DICOM files of the patient folder it is named after."""
    labels = _labels(root)
    patients = {p.name: p for p in root.rglob("Prostate*-01-[0-9][0-9][0-9][0-9]") if p.is_dir() and not is_junk(p)}
    found = 0
    for patient in sorted(labels):
        folder = patients.get(patient)
        dicoms = files_with_suffix(folder, [".dcm"], recursive=True) if folder else []
        if dicoms:
            found += 1
            yield CaseFiles(patient, tuple(dicoms), labels[patient])
    if not found:
        raise ValueError(f"{root}: no {'/'.join(SPLITS)} label NRRD with its patient's DICOM folder; pass {HINT}")
