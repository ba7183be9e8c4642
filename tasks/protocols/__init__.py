"""Named prompt protocols that reproduce published evaluation rules: slice-wise (one object on one
slice, ``PromptProtocol``) and volumetric (one object through a 3D case, ``VolumeProtocol``)."""

from __future__ import annotations

from tasks.protocols.base import Context, PromptProtocol, Step, object_seed
from tasks.protocols.cvpr24_box3d import CVPR24Box3D
from tasks.protocols.cvpr25_interactive import CVPR25Interactive
from tasks.protocols.cvpr25_sam2 import CVPR25InteractiveSAM2
from tasks.protocols.mazurowski import Mazurowski
from tasks.protocols.medsam_box import MedSAMBox, MedSAMBoxJitter
from tasks.protocols.microsam import MicroSAMIterative, MicroSAMPrompts
from tasks.protocols.radioactive import RadioActiveInterpolation, RadioActivePropagation
from tasks.protocols.sam2_propagation import SAM2Propagation, SAM2PropagationPoint
from tasks.protocols.sammed2d import SAMMed2D, SAMMed2DIter
from tasks.protocols.slicewise_box3d import SlicewiseBox3D
from tasks.protocols.volumetric import VolumeContext, VolumeProtocol, VolumeStep

AnyProtocol = PromptProtocol | VolumeProtocol

PROTOCOLS: dict[str, type[AnyProtocol]] = {
    "medsam-box": MedSAMBox,
    "medsam-box-jitter": MedSAMBoxJitter,
    "mazurowski": Mazurowski,
    "microsam": MicroSAMPrompts,
    "microsam-iterative": MicroSAMIterative,
    "sammed2d": SAMMed2D,
    "sammed2d-iter": SAMMed2DIter,
    "cvpr24-box3d": CVPR24Box3D,
    "cvpr25-interactive": CVPR25Interactive,
    "radioactive-propagation": RadioActivePropagation,
    "radioactive-interpolation": RadioActiveInterpolation,
    "slicewise-box3d": SlicewiseBox3D,
    "sam2-propagation": SAM2Propagation,
    "sam2-propagation-point": SAM2PropagationPoint,
    "cvpr25-interactive-sam2": CVPR25InteractiveSAM2,
}


def is_volumetric(protocol: AnyProtocol) -> bool:
    """True for protocols that prompt a whole object through a volume."""
    return isinstance(protocol, VolumeProtocol)


def get_protocol(name: str, **options: int | str) -> AnyProtocol:
    """Build the protocol called ``name`` with its options (e.g. ``clicks``)."""
    try:
        cls = PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}") from None
    accepted = {k: v for k, v in options.items() if v is not None and k in getattr(cls, "OPTIONS", ())}
    return cls(**accepted)


__all__ = [
    "AnyProtocol", "Context", "PromptProtocol", "Step", "VolumeContext", "VolumeProtocol", "VolumeStep",
    "object_seed", "get_protocol", "is_volumetric", "PROTOCOLS",
]
