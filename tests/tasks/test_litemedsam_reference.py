"""LiteMedSAM medsam-box Dice on real sample lesions against an in-test reference of the upstream
inference (``CVPR24_LiteMedSAM_infer.py``: cv2 ``INTER_AREA`` to long side 256, min-max, pad,
box scaled by 256 / max(H, W) and expanded 5 px, crop, bilinear upsampling, sigmoid > 0.5), run
on the package's own network.

The slices are two per case from the pyradiomics sample (brain1 MR, lung2 CT), read straight from
the sdist in ``SAMATLAS_TEST_DOWNLOADS`` and windowed by the card's preset, so the only thing that
differs between the two sides is samatlas' own code: preprocessing, box protocol and decoding.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2  # opencv-python-headless: a declared test dependency
import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from catalog.registry import get_card
from tasks.evaluate_unit import object_context
from tasks.intensity import to_uint8, window
from tasks.models import load_model
from tasks.protocols import MedSAMBox
from tests.conftest import SHARED_DOWNLOADS

SDIST = SHARED_DOWNLOADS / "pyradiomics-3.0.1.tar.gz"
CASES = {"brain1": "brain-mr", "lung2": "chest-ct"}


def sample_slices(case_id: str, folder: Path, count: int = 2) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(z, (H, W, 3) uint8 image, lesion mask) for ``count`` lesion slices spread over the lesion."""
    with tarfile.open(SDIST) as archive:
        for kind in ("image", "label"):
            archive.extract(f"pyradiomics-3.0.1/data/{case_id}_{kind}.nrrd", folder, filter="data")
    data = folder / "pyradiomics-3.0.1" / "data"
    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(data / f"{case_id}_image.nrrd"))).astype(np.float32)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(data / f"{case_id}_label.nrrd"))) == 1
    low, high = window(volume, get_card("sample-radiomics").subset(CASES[case_id]).intensity)
    lesion = np.flatnonzero(label.sum(axis=(1, 2)) >= 10)
    chosen = lesion[np.linspace(0, lesion.size - 1, count + 2).round().astype(int)[1:-1]]
    return [(int(z), np.repeat(to_uint8(volume[z], low, high)[..., None], 3, axis=2), label[z]) for z in chosen]


@torch.inference_mode()
def reference_mask(net: torch.nn.Module, image: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The upstream inference, written from CVPR24_LiteMedSAM_infer.py with cv2 for the resize."""
    h, w = gt.shape
    scale = 256 / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    small = (small - small.min()) / np.clip(small.max() - small.min(), 1e-8, None)
    padded = np.pad(small, ((0, 256 - new_h), (0, 256 - new_w), (0, 0)))
    features = net.image_encoder(torch.tensor(padded, dtype=torch.float32).permute(2, 0, 1)[None])
    ys, xs = np.nonzero(gt)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64) * scale
    box = np.clip(box + [-5, -5, 5, 5], 0, [new_w - 1, new_h - 1, new_w - 1, new_h - 1])
    sparse, dense = net.prompt_encoder(points=None, boxes=torch.tensor(box[None, None], dtype=torch.float32), masks=None)
    logits, _ = net.mask_decoder(
        image_embeddings=features, image_pe=net.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
    )
    logits = F.interpolate(logits[..., :new_h, :new_w], size=(h, w), mode="bilinear", align_corners=False)
    return (torch.sigmoid(logits)[0, 0] > 0.5).numpy()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize("case_id", list(CASES))
def test_medsam_box_dice_matches_the_upstream_inference(case_id: str, tmp_path: Path):
    model = load_model("litemedsam")
    protocol = MedSAMBox()
    ours, theirs = [], []
    for z, image, gt in sample_slices(case_id, tmp_path):
        embedding = model.encode(image)
        ctx = object_context(model, embedding, gt, ("sample-radiomics", case_id, z, 1), protocol, [])
        ours.append(dice(protocol.run(ctx)[0].mask, gt))
        theirs.append(dice(reference_mask(model.net, image, gt), gt))
    assert min(theirs) > 0.5  # the reference itself segments the lesions: the comparison means something
    np.testing.assert_allclose(ours, theirs, atol=0.02)
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.02
