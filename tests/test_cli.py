"""The command-line entry point: version, help, and the installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys

from typer.testing import CliRunner

from mmadfer_cli import __version__
from mmadfer_cli.cli.app import app

runner = CliRunner()


def test_version_prints_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mmadfer {__version__}"


def test_help_describes_tool() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "MMA-DFER" in result.stdout


def test_installed_console_script_runs() -> None:
    exe = shutil.which("mmadfer")
    cmd = [exe] if exe else [sys.executable, "-m", "mmadfer_cli"]
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
