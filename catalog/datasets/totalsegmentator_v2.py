"""TotalSegmentator dataset v2.0.1: 1,228 whole-body CTs with 117 structures.

``Totalsegmentator_dataset_v201/sNNNN/{ct.nii.gz, segmentations/<class>.nii.gz}`` + ``meta.csv``
(``;``-separated). There is no label map: each of the 117 classes is a binary NIfTI. They are
merged here in the order of TotalSegmentator's own v2 ``total`` class map, so label value v is
that map's class v (the same numbering its model outputs); where masks overlap, the later class
wins. Every case must have all 117 files (empty ones included), so a missing file quarantines
the case. v1 (104 classes) renamed and numbered classes differently and is not read by this card.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import find
from tasks.formats.merge import MaskSetCase
from tasks.formats.merge import read_merged

CLASSES = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea",
    "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst_left",
    "kidney_cyst_right", "sacrum", "vertebrae_S1", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3",
    "vertebrae_L2", "vertebrae_L1", "vertebrae_T12", "vertebrae_T11", "vertebrae_T10", "vertebrae_T9",
    "vertebrae_T8", "vertebrae_T7", "vertebrae_T6", "vertebrae_T5", "vertebrae_T4", "vertebrae_T3",
    "vertebrae_T2", "vertebrae_T1", "vertebrae_C7", "vertebrae_C6", "vertebrae_C5", "vertebrae_C4",
    "vertebrae_C3", "vertebrae_C2", "vertebrae_C1", "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk",
    "subclavian_artery_right", "subclavian_artery_left", "common_carotid_artery_right",
    "common_carotid_artery_left", "brachiocephalic_vein_left", "brachiocephalic_vein_right",
    "atrial_appendage_left", "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left",
    "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right", "femur_left",
    "femur_right", "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left", "gluteus_maximus_right",
    "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
    "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain", "skull",
    *(f"rib_left_{i}" for i in range(1, 13)), *(f"rib_right_{i}" for i in range(1, 13)),
    "sternum", "costal_cartilages",
)

# Anatomy of a class, by the first rule whose prefix its name starts with.
ANATOMY_RULES = (
    ("kidney", "kidney"), ("adrenal", "adrenal-gland"), ("lung", "lung"), ("trachea", "airway"),
    ("thyroid", "thyroid"), ("small_bowel", "small-bowel"), ("urinary_bladder", "bladder"),
    ("atrial_appendage", "heart"), ("heart", "heart"), ("spinal_cord", "spinal-cord"),
    ("gluteus", "muscle"), ("autochthon", "muscle"), ("iliopsoas", "muscle"),
    ("aorta", "vessels"), ("pulmonary_vein", "vessels"), ("brachiocephalic", "vessels"), ("subclavian", "vessels"),
    ("common_carotid", "vessels"), ("superior_vena", "vessels"), ("inferior_vena", "vessels"),
    ("portal_vein", "vessels"), ("iliac", "vessels"),
    ("sacrum", "bone"), ("vertebrae", "bone"), ("humerus", "bone"), ("scapula", "bone"), ("clavicula", "bone"),
    ("femur", "bone"), ("hip", "bone"), ("skull", "bone"), ("rib", "bone"), ("sternum", "bone"), ("costal", "bone"),
)


def anatomy_of(name: str) -> str:
    """The anatomy region of a TotalSegmentator class; organs not in the rules are their own region."""
    return next((region for prefix, region in ANATOMY_RULES if name.startswith(prefix)), name.replace("_", "-"))


LABELS = {v: Target(name=c.lower().replace("_", "-"), anatomy=anatomy_of(c)) for v, c in enumerate(CLASSES, start=1)}


@dataset_card(
    id="totalsegmentator_v2",
    name="TotalSegmentator dataset v2.0.1",
    dimensionality=3,
    subsets=(
        # One soft-tissue window for the whole body; lungs and bones would each prefer their own.
        Subset(modality="ct", region="whole-body", intensity=CTWindow(preset="ct-soft-tissue"), labels=LABELS),
    ),
    source=ManualSource(
        register_at="https://zenodo.org/records/10047292 (open, no account)",
        what_to_pass="Totalsegmentator_dataset_v201.zip (about 23.6 GB) or its extracted folder; "
                     "samatlas knows no verified sha256 for it, so it does not download it itself",
    ),
    license="CC BY 4.0",
    citation="Wasserthal J et al. TotalSegmentator: Robust Segmentation of 104 Anatomic Structures in CT Images. "
             "Radiol Artif Intell 2023;5(5):e230024.",
    layout="Totalsegmentator_dataset_v201/sNNNN/{ct.nii.gz, segmentations/<class>.nii.gz (117 binary masks)} + meta.csv",
    cases=1228,
    reader=read_merged,
)
def totalsegmentator_v2(root: Path) -> Iterator[CaseFiles]:
    """Every ``sNNNN`` folder: its CT and its 117 class masks in class-map order."""
    for ct in find(root, "s[0-9][0-9][0-9][0-9]/ct.nii.gz", "Totalsegmentator_dataset_v201.zip or its extracted folder"):
        masks = ct.parent / "segmentations"
        yield MaskSetCase(ct.parent.name, (ct,), masks,
                          masks=tuple((v, masks / f"{c}.nii.gz") for v, c in enumerate(CLASSES, start=1)))
