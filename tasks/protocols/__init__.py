"""Named prompt protocols that reproduce published evaluation rules."""

from __future__ import annotations

from tasks.protocols.base import Context, PromptProtocol, Step, object_seed
from tasks.protocols.mazurowski import Mazurowski
from tasks.protocols.medsam_box import MedSAMBox, MedSAMBoxJitter
from tasks.protocols.microsam import MicroSAMIterative, MicroSAMPrompts
from tasks.protocols.sammed2d import SAMMed2D, SAMMed2DIter

PROTOCOLS: dict[str, type[PromptProtocol]] = {
    "medsam-box": MedSAMBox,
    "medsam-box-jitter": MedSAMBoxJitter,
    "mazurowski": Mazurowski,
    "microsam": MicroSAMPrompts,
    "microsam-iterative": MicroSAMIterative,
    "sammed2d": SAMMed2D,
    "sammed2d-iter": SAMMed2DIter,
}


def get_protocol(name: str, **options: int) -> PromptProtocol:
    """Build the protocol called ``name`` with its options (e.g. ``clicks``)."""
    try:
        cls = PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}") from None
    accepted = {k: v for k, v in options.items() if v is not None and k in getattr(cls, "OPTIONS", ())}
    return cls(**accepted)


__all__ = ["Context", "PromptProtocol", "Step", "object_seed", "get_protocol", "PROTOCOLS"]
