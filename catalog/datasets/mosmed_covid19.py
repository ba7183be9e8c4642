"""MosMedData COVID19_1110: chest CT with COVID-19 findings (Moscow, 2020).

``COVID19_1110/studies/CT-0 ... CT-4/study_NNNN.nii.gz`` (1,110 studies, graded by severity) and
``COVID19_1110/masks/study_NNNN_mask.nii.gz`` for 50 CT-1 studies (0255-0304): ground-glass
opacities and consolidation as one binary target. Only those 50 are ingested (the rest have nothing
to score). The masks are floats; like amid, samatlas counts a voxel as lesion above 0.5. Slices are
thick and the slice count varies between studies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import is_junk
from tasks.formats.binary import read_binary

HINT = "the COVID19_1110 folder (studies/CT-0..CT-4, masks/) or the archive it comes in"


@dataset_card(
    id="mosmed_covid19",
    name="MosMedData: Chest CT Scans with COVID-19 Related Findings (COVID19_1110)",
    dimensionality=3,
    subsets=(Subset(modality="ct", region="chest", intensity=CTWindow(preset="ct-lung"),
                    labels={1: Target(name="covid-19-lesion", anatomy="lung")}),),
    source=ManualSource(
        register_at="https://mosmed.ai/en/datasets/covid191110/ (request form on the page)",
        what_to_pass=HINT,
    ),
    license="CC BY-NC-ND 3.0",
    citation="Morozov SP, Andreychenko AE, Pavlov NA, et al. MosMedData: Chest CT Scans With COVID-19 Related "
             "Findings Dataset. arXiv:2005.06465 (2020).",
    layout="COVID19_1110/studies/CT-{0..4}/study_NNNN.nii.gz; masks/study_NNNN_mask.nii.gz for CT-1 studies 0255-0304 "
           "(lesion = mask > 0.5)",
    reader=read_binary,
    cases=50,  # studies with masks (1,110 studies in all)
)
def mosmed_covid19(root: Path) -> Iterator[CaseFiles]:
    """Every ``masks/study_NNNN_mask.nii.gz`` with its ``studies/CT-*/study_NNNN.nii.gz``."""
    studies = {p.name.removesuffix(".nii.gz"): p for p in root.rglob("CT-*/study_*.nii.gz") if not is_junk(p)}
    found = 0
    for mask in sorted(root.rglob("masks/study_*_mask.nii.gz")):
        study = mask.name.removesuffix("_mask.nii.gz")
        if is_junk(mask) or study not in studies:
            continue
        found += 1
        yield CaseFiles(study, (studies[study],), mask)
    if not found:
        raise ValueError(f"{root}: no masks/study_NNNN_mask.nii.gz with its studies/CT-*/study_NNNN.nii.gz; pass {HINT}")
