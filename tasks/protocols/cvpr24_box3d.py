"""``cvpr24-box3d``: the CVPR 2024 "MedSAM on Laptop" 3D rule (LiteMedSAM's baseline, protocols.md §7.1).

Per object, the tight 3D GT box ``[x0, y0, z0, x1, y1, z1]``. The walk starts on
``z_mid = int((z1 - z0) / 2 + z0)`` (the middle of the box's range, not the key slice) with the box's
2D part, then goes ``z_mid+1 .. z1`` and ``z_mid-1 .. z0``, each slice prompted with the box of the
prediction on the slice before it, expanded by 3 model-input px; an empty neighbour falls back to the
2D box. One step, one mask output per slice.

Boundary convention (``z_range``): ``"inclusive"`` (the default) predicts every slice of the box,
z0 and z1 included. The baseline's own loops (``range(z_middle, z_max)`` and
``range(z_middle - 1, z_min, -1)`` in ``CVPR24_LiteMedSAM_infer.py``) stop one short at both ends, so
its first and last slice stay empty; ``"reference"`` reproduces that, for comparison with the published
baseline numbers. Scored with the MedSAM paper's convention (surface-distance NSD at 2 mm of real
spacing); the challenge's DSC > 0.2 gate on NSD is applied per case in the CVPR summary, not per object.
"""

from __future__ import annotations

from collections.abc import Iterator

from records.specs import ProtocolSpec
from tasks.metrics import convention
from tasks.protocols.propagation import propagate
from tasks.protocols.volumetric import VolumeContext, VolumeProtocol, VolumeStep

Z_RANGES = ("inclusive", "reference")
PROPAGATION_MARGIN = 3  # px at the model's input scale, the baseline's get_bbox256(bbox_shift=3)
SCORING = convention("medsam-paper").to_params()


class CVPR24Box3D(VolumeProtocol):
    """One step: the 3D box's 2D part on the middle slice of its range, carried outward by previous-mask boxes."""

    name = "cvpr24-box3d"
    OPTIONS = ("z_range",)

    def __init__(self, z_range: str = "inclusive"):
        if z_range not in Z_RANGES:
            raise ValueError(f"{self.name}: z_range must be one of {', '.join(Z_RANGES)}, not {z_range!r}")
        self.z_range = z_range

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(self.name, {
            "box": "gt-3d-tight", "start": "middle-of-range", "propagation": "previous-mask-box",
            "margin_px": PROPAGATION_MARGIN, "fallback": "start-box", "z_range": self.z_range, "scoring": SCORING,
        }),)

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        z0, y0, x0, z1, y1, x1 = ctx.target.bbox
        z_mid = int((z1 - z0) / 2 + z0)
        low, high = (z0, z1) if self.z_range == "inclusive" else (z0 + 1, z1 - 1)
        box = (float(x0), float(y0), float(x1), float(y1))
        pred = ctx.empty()
        propagate(ctx, pred, z_mid, box, min(low, z_mid), max(high, z_mid), PROPAGATION_MARGIN, fallback=True)
        yield VolumeStep(self.name, 1, {"box": list(box), "z": z_mid, "z_range": [low, high]}, pred)
