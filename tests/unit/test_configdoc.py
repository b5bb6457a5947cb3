"""docs/configuration.md lists every config key, as generated from Settings."""

from __future__ import annotations

from pathlib import Path

from moorage.configdoc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    assert DOC.read_text() == render(), "run: moorage config-docs > docs/configuration.md"
