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
