"""BraTS 2023: brain tumour MR, four co-registered sequences, one subset per sub-challenge.

Each sub-challenge (GLI adult glioma, MEN meningioma, MET metastases, PED paediatric, SSA
sub-Saharan Africa) is a separate download whose case folders carry its prefix:
``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1c,t1n,t2f,t2w,seg}.nii.gz``. All are skull-stripped,
co-registered to SRI24 at 1 mm. 2023 labels: 1 non-enhancing tumour core (called NCR in GLI, SSA
and PED, NETC in MEN and MET), 2 surrounding FLAIR hyperintensity (SNFH, edema), 3 enhancing
tumour (ET). Releases up to 2021 used 4 for ET; a 4 here is refused, not remapped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find

SEQUENCES = ("t1n", "t1c", "t2w", "t2f")
SUB_CHALLENGES = ("gli", "men", "met", "ped", "ssa")
LABELS = {
    1: Target(name="non-enhancing-tumour-core", anatomy="brain"),
    2: Target(name="edema", anatomy="brain"),
    3: Target(name="enhancing-tumour", anatomy="brain"),
}


@dataset_card(
    id="brats2023",
    name="BraTS 2023: Brain Tumor Segmentation (GLI, MEN, MET, PED, SSA)",
    dimensionality=3,
    subsets=tuple(
        Subset(name=s, modality="mr", region="brain", intensity=PercentileClip(), channels=SEQUENCES, labels=LABELS)
        for s in SUB_CHALLENGES
    ),
    source=ManualSource(
        register_at="https://www.synapse.org/#!Synapse:syn51156910 (Synapse account and the data-use terms)",
        what_to_pass="a sub-challenge's training zip, e.g. ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData.zip, "
                     "or a folder holding one or more extracted sub-challenge folders",
    ),
    license="Synapse data-use terms of each sub-challenge (not verified here)",
    citation="Baid U et al. The RSNA-ASNR-MICCAI BraTS 2021 Benchmark on Brain Tumor Segmentation and "
             "Radiogenomic Classification. arXiv:2107.02314 (2021); Menze BH et al. IEEE Trans Med Imaging "
             "2015;34(10):1993-2024; and the BraTS 2023 MEN, MET, PED and SSA challenge papers.",
    layout="<sub-challenge folder>/BraTS-XXX-NNNNN-NNN/BraTS-XXX-NNNNN-NNN-{t1c,t1n,t2f,t2w,seg}.nii.gz",
    cases=None,  # the survey counts 4,500 over all sub-challenges; GLI training alone has 1,251
)
def brats2023(root: Path) -> Iterator[CaseFiles]:
    """Every case folder with a ``-seg`` file, its four sequences as channels, in its sub-challenge's subset."""
    for seg in find(root, "BraTS-*/BraTS-*-seg.nii.gz", "a sub-challenge's training zip or folder"):
        case_id = seg.parent.name
        subset = case_id.split("-")[1].lower()
        if subset not in SUB_CHALLENGES:
            raise ValueError(f"{seg.parent}: unknown BraTS 2023 sub-challenge prefix in {case_id!r}")
        yield CaseFiles(case_id, tuple(seg.with_name(f"{case_id}-{s}.nii.gz") for s in SEQUENCES), seg, subset=subset)
