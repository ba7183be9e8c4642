"""JSRT chest radiographs (Japanese Society of Radiological Technology) with lung and heart masks.

Release facts relied on. The database's 247 images (``JPCLN001..154.IMG`` with a nodule,
``JPCNN001..093.IMG`` without) are headerless 2048x2048 big-endian 16-bit files of 12-bit film
density (``tasks/formats/jsrt.py`` reads and inverts them; no spacing in the file, so 1.0 mm is
assumed and flagged, where the database documents 0.175 mm). Their masks come from the SCR database
(van Ginneken et al.): ``scratch/fold{1,2}/masks/<structure>/JPCLN001.gif`` at 1024x1024, one GIF per
structure, resized to the image with nearest neighbour; ``right lung`` = 1, ``left lung`` = 2,
``heart`` = 3, painted in that order. The clavicle masks are not ingested: they overlap the lung
fields and one label map cannot hold overlaps (the survey counts two targets, lungs and heart).
JSRT's own ``segmentation02.zip`` is read too: ``segmentation02/segmentation/org_{train,test}/*.bmp``
with ``label_{train,test}/<same stem>.png``, 255 = lung (value 1), 85 = heart (value 2).
``Segmentation01.zip`` (lung fields, label levels undocumented) is not read. The survey's 307
images match no release.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from records.cards import CaseFiles, ManualSource, PercentileClip, Subset, Target
from catalog.registry import dataset_card
from tasks.formats.release import case_slug, files_in, top_folders, walk_files
from tasks.formats.jsrt import SCR_LABELS
from tasks.formats.jsrt import read_jsrt


def _scr_masks(root: Path) -> dict[str, list[Path]]:
    """The SCR lung and heart GIFs of each image stem (upper case), in ``SCR_LABELS`` order."""
    masks: dict[str, dict[str, Path]] = defaultdict(dict)
    for gif in walk_files(root, (".gif",)):
        if gif.parent.name in SCR_LABELS and gif.parent.parent.name == "masks":
            masks[gif.stem.upper()][gif.parent.name] = gif
    return {stem: [found[s] for s in SCR_LABELS] for stem, found in masks.items() if len(found) == len(SCR_LABELS)}


@dataset_card(
    id="jsrt",
    name="JSRT Digital Image Database with SCR and JSRT lung/heart masks",
    dimensionality=2,
    subsets=(
        Subset(name="scr", modality="xray", region="chest", labels={
            1: Target(name="right-lung", anatomy="lung"),
            2: Target(name="left-lung", anatomy="lung"),
            3: Target(name="heart", anatomy="heart"),
        }, intensity=PercentileClip()),
        Subset(name="segmentation02", modality="xray", region="chest", labels={
            1: Target(name="lungs", anatomy="lung"),
            2: Target(name="heart", anatomy="heart"),
        }, intensity=PercentileClip()),
    ),
    source=ManualSource(
        register_at="http://db.jsrt.or.jp/eng.php",
        what_to_pass="a folder holding the 247 .IMG files (e.g. All247images/) and the SCR masks (scr/scratch/...), "
                     "and/or the unzipped segmentation02.zip from imgcom.jsrt.or.jp",
    ),
    license="JSRT database terms: research and education use (n/v); SCR masks: SCR terms (n/v)",
    citation="Shiraishi J, Katsuragawa S, Ikezoe J, et al. Development of a digital image database for chest "
             "radiographs with and without a lung nodule. AJR 2000;174(1):71-74. van Ginneken B, Stegmann MB, Loog M. "
             "Segmentation of anatomical structures in chest radiographs using supervised methods. "
             "Med Image Anal 2006;10(1):19-40.",
    layout="JPC{LN,NN}NNN.IMG (2048x2048 big-endian uint16, no header) with SCR scratch/fold{1,2}/masks/<structure>/"
           "<name>.gif (1024x1024); or segmentation02/segmentation/{org,label}_{train,test}",
    cases=247,
    reader=read_jsrt,
)
def jsrt(root: Path) -> Iterator[CaseFiles]:
    """``.IMG`` files that have SCR lung and heart masks, then Segmentation02 pairs."""
    masks = _scr_masks(root)
    for image in walk_files(root, (".img",)):
        found = masks.get(image.stem.upper())
        if found:
            yield CaseFiles(case_slug(image.stem), (image,), found[0], subset="scr", more=tuple(found[1:]))
    for top in top_folders(root, "segmentation02")[:1]:
        for split in ("train", "test"):
            labels = {p.stem: p for p in files_in(top / "segmentation" / f"label_{split}", (".png",))}
            for image in files_in(top / "segmentation" / f"org_{split}", (".bmp",)):
                if image.stem in labels:
                    yield CaseFiles(case_slug("seg02", split, image.stem), (image,), labels[image.stem],
                                    subset="segmentation02")
