"""Measurement (not a test): LiteMedSAM medsam-box Dice and NSD on the pyradiomics sample lesions
under the metric conventions, and for the chest CTs under two lung windows.

For every case of sample-radiomics, every lesion slice the medsam-box protocol keeps (>= 10 px, at
most ``--max-slices`` evenly spread) is encoded once per window and scored per 2D slice with its
in-plane spacing under samatlas' voxel convention (``voxels-2mm-nogate-max``), the MedSAM paper's
(``surfels-2mm-nogate-max``), 2D contour surfels at 2 px with the Dice gate (``surfels-2px-gate0.2-max``)
and the CVPR 2024/2025 2D scorer's one-slice volume (``surfels-slab-2px-gate0.2-max``). MR
cases use the card's percentile clip; chest CTs use L -600/W 1500 (the card, ``ct-lung``) and
L -160/W 1500 (``ct-lung-medsam-paper``). Prints a Markdown table, then one JSON line.

    SAMATLAS_TEST_DOWNLOADS=... python bench/sample_conventions.py [--max-slices 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.registry import get_card  # noqa: E402
from tasks.evaluate_unit import object_context  # noqa: E402
from tasks.intensity import parse_window, to_uint8, window  # noqa: E402
from tasks.metrics import CVPR24_2D, MEDSAM_PAPER, SAMATLAS_VOXELS, SURFELS_2D_2PX, score  # noqa: E402
from tasks.models import load_model  # noqa: E402
from tasks.protocols import MedSAMBox  # noqa: E402

CASES = {"brain1": "brain-mr", "brain2": "brain-mr", "lung1": "chest-ct", "lung2": "chest-ct", "breast1": "breast-mr"}
CONVENTIONS = (SAMATLAS_VOXELS, MEDSAM_PAPER, SURFELS_2D_2PX, CVPR24_2D)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-slices", type=int, default=0, help="lesion slices per case, evenly spread (0: all)")
    args = parser.parse_args()
    sdist = Path(os.environ.get("SAMATLAS_TEST_DOWNLOADS", "samatlas-data/cache/downloads")) / "pyradiomics-3.0.1.tar.gz"
    model, protocol = load_model("litemedsam"), MedSAMBox()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(sdist) as archive:
        for case_id, subset in CASES.items():
            for kind in ("image", "label"):
                archive.extract(f"pyradiomics-3.0.1/data/{case_id}_{kind}.nrrd", tmp, filter="data")
            image = sitk.ReadImage(f"{tmp}/pyradiomics-3.0.1/data/{case_id}_image.nrrd")
            volume = sitk.GetArrayFromImage(image).astype(np.float32)
            label = sitk.GetArrayFromImage(sitk.ReadImage(f"{tmp}/pyradiomics-3.0.1/data/{case_id}_label.nrrd")) == 1
            spacing = tuple(image.GetSpacing()[::-1][1:])  # (sy, sx) in array order
            slices = np.flatnonzero(label.sum(axis=(1, 2)) >= protocol.min_area_px)
            if args.max_slices and slices.size > args.max_slices:
                slices = slices[np.linspace(0, slices.size - 1, args.max_slices).round().astype(int)]
            windows = {"card": window(volume, get_card("sample-radiomics").subset(subset).intensity)}
            if subset == "chest-ct":
                windows = {"L-600/W1500": parse_window("ct-lung"), "L-160/W1500": parse_window("ct-lung-medsam-paper")}
            for name, (low, high) in windows.items():
                per_conv: dict[str, list[tuple[float, float]]] = {c.name: [] for c in CONVENTIONS}
                for z in slices:
                    rgb = np.repeat(to_uint8(volume[z], low, high)[..., None], 3, axis=2)
                    embedding = model.encode(rgb)
                    ctx = object_context(model, embedding, label[z], ("sample-radiomics", case_id, int(z), 1), protocol, [])
                    mask = protocol.run(ctx)[0].mask
                    for conv in CONVENTIONS:
                        s = score(mask, label[z], spacing, conv)
                        per_conv[conv.name].append((s.dice, s.nsd))
                dice_mean = float(np.mean([d for d, _ in per_conv[SAMATLAS_VOXELS.name]]))
                nsd = {c: float(np.mean([n for _, n in v])) for c, v in per_conv.items()}
                rows.append({"case": case_id, "window": name, "slices": int(slices.size), "dice": dice_mean, "nsd": nsd})
                print(f"{case_id} {name}: {slices.size} slices, dice {dice_mean:.4f}, nsd {nsd}", file=sys.stderr, flush=True)
    names = [c.name for c in CONVENTIONS]
    print("| case | window | slices | Dice | " + " | ".join(f"NSD {n}" for n in names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for r in rows:
        print(f"| {r['case']} | {r['window']} | {r['slices']} | {r['dice']:.3f} | " + " | ".join(f"{r['nsd'][n]:.3f}" for n in names) + " |")
    print(json.dumps({"bench": "sample_conventions", "rows": rows}))


if __name__ == "__main__":
    main()
