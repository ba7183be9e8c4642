"""Five real patient volumes with hand-drawn lesion labels, from the pyradiomics 3.0.1 sdist.

Brain MR (contrast T1, two patients), chest CT (a tumour and a small nodule) and a breast MR crop,
as NRRD under ``data/``; image and label share geometry. The sdist is BSD-3-Clause; it does not
document where the de-identified patient images came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, PackageSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card

_SUBSET_OF = {"brain": "brain-mr", "lung": "chest-ct", "breast": "breast-mr"}


@dataset_card(
    id="sample-radiomics",
    name="pyradiomics sample cases",
    dimensionality=3,
    subsets=(
        Subset(name="brain-mr", modality="mr", region="brain", labels={1: Target(name="brain-tumour", anatomy="brain")},
               intensity=PercentileClip()),
        # Lung window L -600 / W 1500 (MedSAM utils/README.md); the MedSAM paper uses L -160 (ct-lung-medsam-paper).
        Subset(name="chest-ct", modality="ct", region="chest", labels={1: Target(name="lung-tumour", anatomy="lung")},
               intensity=CTWindow(preset="ct-lung")),
        Subset(name="breast-mr", modality="mr", region="breast",
               labels={1: Target(name="breast-lesion", anatomy="breast")}, intensity=PercentileClip()),
    ),
    source=PackageSource(
        requirement="pyradiomics==3.0.1",
        filename="pyradiomics-3.0.1.tar.gz",
        sha256="47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5",
        members=("pyradiomics-3.0.1/data/*.nrrd",),
        build_isolation=False,
    ),
    license="BSD-3-Clause (pyradiomics); image provenance undocumented",
    citation="van Griethuysen JJM et al. Computational Radiomics System to Decode the Radiographic Phenotype. Cancer Res 2017;77(21):e104-e107.",
    layout="pyradiomics-3.0.1/data/<case>_image.nrrd with <case>_label.nrrd (uint8, lesion = 1)",
    cases=5,
)
def sample_radiomics(root: Path) -> Iterator[CaseFiles]:
    """Pair every ``<case>_image.nrrd`` with its ``<case>_label.nrrd``."""
    for image in sorted((root / "pyradiomics-3.0.1" / "data").glob("*_image.nrrd")):
        case_id = image.name.removesuffix("_image.nrrd")
        kind = case_id.rstrip("0123456789")
        yield CaseFiles(case_id, (image,), image.with_name(f"{case_id}_label.nrrd"), subset=_SUBSET_OF[kind])
