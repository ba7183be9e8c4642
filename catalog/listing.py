"""The dataset registry as rows: for ``samatlas datasets`` and the generated docs/datasets.md."""

from __future__ import annotations

from collections.abc import Sequence

from records.cards import DatasetCard
from catalog.registry import all_cards

COLUMNS = ("id", "name", "modality", "anatomy", "dim", "targets", "cases", "license", "access")
DOCS_HEADER = """# Datasets

Generated from the dataset registry by `python -m catalog.listing > docs/datasets.md`; a test checks
it is current. `access`: `package` and `url` releases are fetched by `samatlas ingest ID` (a release
shipped one archive per subset, as msd's ten tasks, by `samatlas fetch ID --subset NAME` or `samatlas
ingest ID --subset NAME`); `manual` ones need registration, then `samatlas ingest ID --source PATH`.

"""


def card_row(card: DatasetCard) -> tuple:
    """One registry row for a card."""
    return (
        card.id, card.name, ", ".join(card.modalities),
        ", ".join(dict.fromkeys(t.anatomy for s in card.subsets for t in s.labels.values())),
        f"{card.dimensionality}D", ", ".join(card.targets), card.cases, card.license, card.source.kind,
    )


def registry_rows(modality: str | None = None, anatomy: str | None = None) -> list[tuple]:
    """Registry rows, optionally only those with a modality or an anatomy region."""
    rows = []
    for card in all_cards():
        regions = {s.region for s in card.subsets} | {t.anatomy for s in card.subsets for t in s.labels.values()}
        if modality and modality not in card.modalities:
            continue
        if anatomy and anatomy not in regions:
            continue
        rows.append(card_row(card))
    return rows


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; ``|`` inside a cell becomes ``/`` so it cannot split the cell."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v).replace("|", "/") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def docs_markdown() -> str:
    """The Markdown page listing every registered dataset."""
    return DOCS_HEADER + markdown_table(COLUMNS, registry_rows()) + "\n"


if __name__ == "__main__":
    print(docs_markdown(), end="")
