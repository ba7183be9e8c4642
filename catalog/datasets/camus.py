"""CAMUS: Cardiac Acquisitions for Multi-structure Ultrasound Segmentation (Leclerc et al. 2019).

Release facts relied on: the 2019 release has ``training/patient0001/patient0001_{2CH,4CH}_{ED,ES}.mhd``
(+ ``.raw``) with ``..._gt.mhd``, plus ``_sequence.mhd`` and ``Info_2CH.cfg``; its 50 ``testing/``
patients have no ``_gt``. The 2023 release has ``database_nifti/patient0001/patient0001_2CH_ED.nii.gz``
with ``_gt.nii.gz`` for all 500 patients, plus ``_half_sequence[_gt].nii.gz`` and
``database_split/subgroup_*.txt``. Labels: 1 = LV endocardium (cavity), 2 = LV myocardium,
3 = left atrium. A case is one labelled frame (patient x view x ED/ES); the (half) sequences are
not ingested. When both releases are given, the 2023 NIfTI one is used. Spacing comes from the files
(anisotropic in the 2019 release).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import walk_files
from tasks.formats.itk2d import read_itk_2d

_FRAME = re.compile(r"^(?P<patient>patient\d{4})_(?P<view>[24]CH)_(?P<phase>ED|ES)$")
RELEASES = ((".nii.gz", "2023-nifti"), (".mhd", "2019-mhd"))


def _frames(root: Path, suffix: str) -> Iterator[tuple[re.Match, Path, Path]]:
    """(name match, image, label) of every labelled ED/ES frame file ending in ``suffix``."""
    for image in walk_files(root, (Path(f"frame{suffix}").suffix,)):
        stem = image.name.removesuffix(suffix)
        match = _FRAME.match(stem)
        label = image.with_name(f"{stem}_gt{suffix}")
        if image.name.endswith(suffix) and match and label.is_file():
            yield match, image, label


@dataset_card(
    id="camus",
    name="CAMUS: 2D echocardiography (apical two- and four-chamber views)",
    dimensionality=2,
    subsets=tuple(
        Subset(name=release, modality="us", region="heart", labels={
            1: Target(name="left-ventricle", anatomy="heart"),
            2: Target(name="left-ventricle-myocardium", anatomy="heart"),
            3: Target(name="left-atrium", anatomy="heart"),
        }, intensity=PercentileClip())
        for _, release in RELEASES
    ),
    source=ManualSource(
        register_at="https://humanheart-project.creatis.insa-lyon.fr/database/#collection/6373703d73e9f0047faa1bc8",
        what_to_pass="the CAMUS download: database_nifti (2023 release) or the 2019 training/ folder of .mhd files",
    ),
    license="humanheart-project terms (not recorded)",
    citation="Leclerc S, Smistad E, Pedrosa J, et al. Deep Learning for Segmentation Using an Open Large-Scale Dataset "
             "in 2D Echocardiography. IEEE Trans Med Imaging 2019;38(9):2198-2210.",
    layout="patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}.{nii.gz|mhd} with _gt (1 = LV cavity, 2 = myocardium, 3 = LA)",
    cases=2000,
    reader=read_itk_2d,
)
def camus(root: Path) -> Iterator[CaseFiles]:
    """The ED and ES frames of both views of each patient that have a ``_gt`` file (one release)."""
    for suffix, release in RELEASES:
        frames = sorted(_frames(root, suffix), key=lambda f: f[1].name)
        for match, image, label in frames:
            case_id = f"{match['patient']}-{match['view']}-{match['phase']}".lower()
            yield CaseFiles(case_id, (image,), label, subset=release)
        if frames:
            return
