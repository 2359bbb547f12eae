"""Shared fixtures: repository paths, the reference data and tool checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint

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


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MMADFER_HOME holding one tiny random model, imported through the CLI."""
    root = tmp_path_factory.mktemp("home")
    torch.manual_seed(0)
    save_checkpoint(build_model(MMADFERConfig.tiny()), root / "tiny.safetensors")
    env = {**os.environ, "MMADFER_HOME": str(root / "cache")}
    cmd = [sys.executable, "-m", "mmadfer_cli", "models", "import", str(root / "tiny.safetensors")]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    return root / "cache"
