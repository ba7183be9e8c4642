"""VESSEL12: vessel segmentation in lung CT (ISBI 2012 grand challenge).

MetaImage ``.mhd``/``.raw`` (int16 HU): scans in ``VESSEL12_01-05/`` ... ``VESSEL12_16-20/`` as
``VESSEL12_NN.mhd``, lung masks for all 20 in ``VESSEL12_01-20_Lungmasks/VESSEL12_NN.mhd``, and three
example scans with lung masks in ``VESSEL12_ExampleScans/{Scans,Lungmasks}/VESSEL12_2{1,2,3}.mhd``.
No dense vessel labels were ever released (vessel ground truth is sparse points for the example
scans, ``Annotations/*.csv``, and hidden for the rest), so the only dense target is the lung mask:
any non-zero voxel is lung. The Zenodo copy (record 8055066) packs each scan in its own
``VESSEL12_NN.tar.bz2``; its folders are found the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, CTWindow, ManualSource, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import is_junk
from tasks.formats.binary import read_binary

HINT = ("a folder holding the unpacked VESSEL12_01-05 ... VESSEL12_16-20 scan folders, "
        "VESSEL12_01-20_Lungmasks and VESSEL12_ExampleScans")


def _is_mask(path: Path) -> bool:
    return any("lungmasks" in part.lower() for part in path.parent.parts[-2:])


@dataset_card(
    id="vessel12",
    name="VESSEL12: Vessel Segmentation in the Lung (lung masks)",
    dimensionality=3,
    subsets=(Subset(modality="ct", region="chest", intensity=CTWindow(preset="ct-lung"),
                    labels={1: Target(name="lung", anatomy="lung")}),),
    source=ManualSource(
        register_at="https://vessel12.grand-challenge.org (grand-challenge account; also on Zenodo record 8055066)",
        what_to_pass=HINT,
    ),
    license="VESSEL12 challenge terms (not verified)",
    citation="Rudyanto RD, Kerkstra S, van Rikxoort EM, et al. Comparing algorithms for automated vessel "
             "segmentation in computed tomography scans of the lung: the VESSEL12 study. "
             "Med Image Anal 2014;18(7):1217-1232.",
    layout="VESSEL12_{01-05,...,16-20}/VESSEL12_NN.mhd + VESSEL12_01-20_Lungmasks/VESSEL12_NN.mhd; "
           "VESSEL12_ExampleScans/{Scans,Lungmasks}/VESSEL12_2{1,2,3}.mhd (lung mask: non-zero = lung)",
    reader=read_binary,
    cases=23,  # 20 challenge scans + 3 example scans, all with lung masks
)
def vessel12(root: Path) -> Iterator[CaseFiles]:
    """Every ``VESSEL12_NN.mhd`` scan paired with the lung mask of the same name."""
    scans: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for path in sorted(root.rglob("VESSEL12_[0-9][0-9].mhd")):
        if is_junk(path):
            continue
        (masks if _is_mask(path) else scans).setdefault(path.stem, path)
    paired = sorted(set(scans) & set(masks))
    if not paired:
        raise ValueError(f"{root}: no VESSEL12_NN.mhd scan with a lung mask of the same name; pass {HINT}")
    for name in paired:
        yield CaseFiles(name, (scans[name],), masks[name])
