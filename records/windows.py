"""Named CT windows (level, width in HU), each with the source that uses it.

A window is a choice that moves Dice (protocols.md §2.1: on one sample chest CT, L -600 vs L -160
moves mean Dice by 0.026), so cards name a preset rather than bare numbers, a YAML card may name
one (``intensity: {kind: ct_window, preset: ct-lung-medsam-paper}``), and an evaluation may
replace a case's stored window with one (``tasks.intensity.parse_window``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPreset:
    """A CT window and where it comes from."""

    level: float
    width: float
    source: str


WINDOWS: dict[str, WindowPreset] = {
    "ct-soft-tissue": WindowPreset(
        40, 400, "MedSAM paper (Nat. Commun. 2024), Methods; bowang-lab/MedSAM@d71e8a1:utils/pre_CT_MR.py default"
    ),
    "ct-abdomen": WindowPreset(40, 400, "the soft-tissue window, as MedSAM preprocesses abdominal CT (FLARE)"),
    "ct-lung-medsam-paper": WindowPreset(-160, 1500, "MedSAM paper (Nat. Commun. 2024), Methods: lung W1500/L-160"),
    "ct-lung": WindowPreset(-600, 1500, "bowang-lab/MedSAM@d71e8a1:utils/README.md, chest CT window"),
    "ct-brain": WindowPreset(40, 80, "MedSAM paper (Nat. Commun. 2024), Methods: brain W80/L40"),
}


def window_preset(name: str) -> WindowPreset:
    """The preset called ``name``, refusing an unknown one with the list of presets."""
    try:
        return WINDOWS[name]
    except KeyError:
        raise ValueError(f"unknown CT window {name!r}; choose from {', '.join(WINDOWS)} or give LEVEL,WIDTH") from None
