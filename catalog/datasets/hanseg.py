"""HaN-Seg: head and neck organs-at-risk on CT (Podobnik et al., Med Phys 2023).

``HaN-Seg/set_1/case_NN/{case_NN_IMG_CT.nrrd, case_NN_IMG_MR_T1.nrrd, case_NN_OAR_<OAR>.seg.nrrd}``
+ ``OAR_data.csv`` and ``patient_data.csv``. The 30 OARs are one binary ``.seg.nrrd`` each, on the
CT only; the MR is not registered to the CT and carries no labels, so it is not ingested. Masks
are merged in the order below (the release's alphabetical order, as the HaN-Seg 2023 challenge
numbers them): label value v is OAR v, and where masks overlap the later OAR wins. OARs missing
from a case (OAR_data.csv lists them; the spinal cord is absent in one of 42) are simply absent.
Eye_A* and Eye_P* are the anterior and posterior segments of the eyeball.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find
from tasks.formats.merge import MaskSetCase
from tasks.formats.merge import read_merged

# Official OAR file name -> (target, anatomy); the order fixes the label values.
OARS: dict[str, tuple[str, str]] = {
    "A_Carotid_L": ("carotid-artery-left", "vessels"),
    "A_Carotid_R": ("carotid-artery-right", "vessels"),
    "Arytenoid": ("arytenoids", "larynx"),
    "Bone_Mandible": ("mandible", "bone"),
    "Brainstem": ("brainstem", "brain"),
    "BuccalMucosa": ("buccal-mucosa", "oral-cavity"),
    "Cavity_Oral": ("oral-cavity", "oral-cavity"),
    "Cochlea_L": ("cochlea-left", "ear"),
    "Cochlea_R": ("cochlea-right", "ear"),
    "Cricopharyngeus": ("cricopharyngeus", "pharynx"),
    "Esophagus_S": ("cervical-esophagus", "esophagus"),
    "Eye_AL": ("eye-anterior-left", "eye"),
    "Eye_AR": ("eye-anterior-right", "eye"),
    "Eye_PL": ("eye-posterior-left", "eye"),
    "Eye_PR": ("eye-posterior-right", "eye"),
    "Glnd_Lacrimal_L": ("lacrimal-gland-left", "eye"),
    "Glnd_Lacrimal_R": ("lacrimal-gland-right", "eye"),
    "Glnd_Submand_L": ("submandibular-gland-left", "salivary-gland"),
    "Glnd_Submand_R": ("submandibular-gland-right", "salivary-gland"),
    "Glnd_Thyroid": ("thyroid", "thyroid"),
    "Glottis": ("glottis", "larynx"),
    "Larynx_SG": ("supraglottic-larynx", "larynx"),
    "Lips": ("lips", "oral-cavity"),
    "OpticChiasm": ("optic-chiasm", "optic-nerve"),
    "OpticNrv_L": ("optic-nerve-left", "optic-nerve"),
    "OpticNrv_R": ("optic-nerve-right", "optic-nerve"),
    "Parotid_L": ("parotid-gland-left", "salivary-gland"),
    "Parotid_R": ("parotid-gland-right", "salivary-gland"),
    "Pituitary": ("pituitary-gland", "brain"),
    "SpinalCord": ("spinal-cord", "spinal-cord"),
}


@dataset_card(
    id="hanseg",
    name="HaN-Seg: head and neck organ-at-risk CT & MR segmentation dataset",
    dimensionality=3,
    subsets=(
        Subset(modality="ct", region="head-neck", intensity=CTWindow(preset="ct-soft-tissue"), labels={
            v: Target(name=name, anatomy=anatomy) for v, (name, anatomy) in enumerate(OARS.values(), start=1)
        }),
    ),
    source=ManualSource(
        register_at="https://zenodo.org/records/7442914 (open, no account)",
        what_to_pass="HaN-Seg.zip (about 4.9 GB) or its extracted HaN-Seg/ folder; "
                     "samatlas knows no verified sha256 for it, so it does not download it itself",
    ),
    license="CC BY-ND 4.0",
    citation="Podobnik G, Strojan P, Peterlin P, Ibragimov B, Vrtovec T. HaN-Seg: The head and neck organ-at-risk "
             "CT and MR segmentation dataset. Med Phys 2023;50(3):1917-1927.",
    layout="HaN-Seg/set_1/case_NN/{case_NN_IMG_CT.nrrd, case_NN_IMG_MR_T1.nrrd, case_NN_OAR_<OAR>.seg.nrrd}",
    cases=42,  # public cases; 14 more are the challenge's hidden test set
    reader=read_merged,
)
def hanseg(root: Path) -> Iterator[CaseFiles]:
    """Every case's CT with the OAR masks it has, in the card's OAR order."""
    for ct in find(root, "case_[0-9][0-9]/case_[0-9][0-9]_IMG_CT.nrrd", "HaN-Seg.zip or its HaN-Seg/ folder"):
        case_id = ct.parent.name
        masks = tuple(
            (v, path) for v, oar in enumerate(OARS, start=1)
            if (path := ct.parent / f"{case_id}_OAR_{oar}.seg.nrrd").is_file()
        )
        yield MaskSetCase(case_id, (ct,), ct.parent, masks=masks)
