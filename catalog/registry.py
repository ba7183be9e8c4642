"""The dataset registry: the built-in cards listed in ``catalog.datasets`` plus the YAML cards a user loads.

The registry is the single source for ingest, the ``datasets`` command and the docs. Built-in cards
are listed explicitly (nothing registers itself on import); YAML cards join when loaded
(``catalog.user_cards``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from records.cards import CaseFiles, DatasetCard
from tasks.readers import read_files

REGISTRY: dict[str, DatasetCard] = {}
"""Every known card by id: the built-ins (filled on first use) and the loaded YAML cards."""


def dataset_card(**fields: object) -> Callable[[Callable[[Path], Iterator[CaseFiles]]], DatasetCard]:
    """Build the card from ``fields`` around the decorated discover function (the reader defaults
    to one SimpleITK file per channel). The card is returned, not registered."""

    def build(discover: Callable[[Path], Iterator[CaseFiles]]) -> DatasetCard:
        return DatasetCard(discover=discover, **{"reader": read_files, **fields})

    return build


class UnknownDataset(KeyError):
    """Raised for a dataset id that no card registers."""


def load_builtins() -> None:
    """Make sure every built-in card is in the registry (cheap after the first call)."""
    from catalog.datasets import BUILTIN_CARDS

    for card in BUILTIN_CARDS:
        REGISTRY.setdefault(card.id, card)


def get_card(dataset_id: str) -> DatasetCard:
    """The card for ``dataset_id`` (built-in or loaded from YAML)."""
    load_builtins()
    try:
        return REGISTRY[dataset_id]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownDataset(f"unknown dataset {dataset_id!r}; known: {known}") from None


def all_cards() -> list[DatasetCard]:
    """Every registered card, sorted by id."""
    load_builtins()
    return [REGISTRY[k] for k in sorted(REGISTRY)]
