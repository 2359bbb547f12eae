"""Shared fixtures: repository paths, the reference data and tool checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_VIDEOS = REPO / "sample_videos"
REFERENCE = REPO.parent / "shared" / "reference"


def require_tool(name: str) -> str:
    """Path of a command-line tool, or skip the test saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official implementation's reference outputs (../shared/reference)."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE
