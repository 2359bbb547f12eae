"""CITATION.cff names the version the package reports, so a citation points at the code that ran."""

from __future__ import annotations

import re
from pathlib import Path

from mmadfer_cli import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_citation_file_has_the_package_version_and_the_paper() -> None:
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    version = re.search(r'^version: "([^"]+)"$', text, re.MULTILINE)
    assert version is not None and version[1] == __version__
    assert "MMA-DFER: MultiModal Adaptation" in text and "year: 2024" in text
