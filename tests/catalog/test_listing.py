"""The dataset registry as a listing and as the generated docs page."""

from __future__ import annotations

import json
from pathlib import Path

from catalog.listing import docs_markdown, registry_rows

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def test_docs_page_is_current():
    assert DOCS.read_text() == docs_markdown(), "regenerate with: python -m catalog.listing > docs/datasets.md"


def test_filters_by_modality_and_anatomy():
    ids = {row[0] for row in registry_rows(modality="ct")}
    assert "sample-radiomics" in ids and "sample-mni152" not in ids
    breast = {row[0] for row in registry_rows(anatomy="breast")}
    assert "sample-radiomics" in breast and "sample-mni152" not in breast
    assert registry_rows(modality="no-such-modality") == []


def test_cli_lists_as_json(cli):
    done = cli("datasets", "--modality", "mr", "--format", "json")
    assert done.exit_code == 0, done.output
    rows = {r["id"]: r for r in json.loads(done.stdout)}
    assert rows["sample-mni152"]["targets"] == "white-matter, grey-matter"
    assert rows["sample-radiomics"]["access"] == "package"


def test_builtin_cards_are_listed_once_with_callable_readers():
    """The registry is the list in catalog.datasets: every module's card appears once, by a unique
    id, and names its reader as a function taking the case files (no name lookups, no import-time
    registration)."""
    import pkgutil

    import catalog.datasets as package
    from catalog.datasets import BUILTIN_CARDS

    ids = [card.id for card in BUILTIN_CARDS]
    assert len(ids) == len(set(ids))
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert len(BUILTIN_CARDS) == len(modules), "a card module is not listed in BUILTIN_CARDS"
    for card in BUILTIN_CARDS:
        assert callable(card.reader) and card.reader.__module__.startswith("tasks."), card.id


def test_layers_import_only_downwards():
    """records/ imports none of the packages; tasks/ never imports catalog/ or flows/ (it returns
    values and only flows write the catalog); catalog/ and samatlas/ never import flows/."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    forbidden = {"records": {"tasks", "catalog", "flows"}, "tasks": {"catalog", "flows"}, "catalog": {"flows"}, "samatlas": {"flows"}}
    for package, banned in forbidden.items():
        for path in (repo / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
                for name in names:
                    assert name.split(".")[0] not in banned, f"{path.relative_to(repo)} imports {name}"
