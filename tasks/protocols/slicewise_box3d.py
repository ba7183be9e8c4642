"""``slicewise-box3d``: a GT box on every slice that holds the object, scored as one 3D volume.

The MedSAM paper's 3D evaluation (protocols.md §2.3-2.4): 3D is "a series of 2D slices", each
GT-positive slice gets its own tight box expanded by the model's margin (5 px at 256 for LiteMedSAM,
20 px at 1024 for SAM/MedSAM, as ``medsam-box``), and DSC/NSD are computed on the stacked volume. It is
the upper reference a propagation protocol is put beside: the same model with a prompt on every slice.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from records.specs import ProtocolSpec
from tasks.metrics import convention
from tasks.models.base import Prompt
from tasks.protocols.base import expand_box, tight_box
from tasks.protocols.volumetric import VolumeContext, VolumeProtocol, VolumeStep

SCORING = convention("medsam-paper").to_params()


class SlicewiseBox3D(VolumeProtocol):
    """One step: every GT slice prompted with its own GT box, in slice order."""

    name = "slicewise-box3d"

    @property
    def specs(self) -> tuple[ProtocolSpec, ...]:
        return (ProtocolSpec(self.name, {"box": "gt-2d-per-slice", "box_margin": "model", "scoring": SCORING}),)

    def run(self, ctx: VolumeContext, wanted: frozenset[str] = frozenset()) -> Iterator[VolumeStep]:
        pred = ctx.empty()
        first, last = ctx.target.first_slice, ctx.target.last_slice
        slices = [int(z) for z in np.flatnonzero(ctx.gt[first:last + 1].any(axis=(1, 2))) + first]
        for z in slices:
            pred[z] = ctx.predict(z, Prompt(box=expand_box(tight_box(ctx.gt[z]), ctx.geometry, ctx.box_shift)))
        yield VolumeStep(self.name, 1, {"boxes": "gt-per-slice", "slices": len(slices)}, pred)
