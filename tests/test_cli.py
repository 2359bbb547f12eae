"""The command-line entry point: version, help, and the installed console script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
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


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_annotate_help_groups_its_options_in_panels_and_lists_choices() -> None:
    out = _help("annotate")
    panels = re.findall(r"╭─ (.+?) ─", out)
    assert panels == ["Arguments", "Options", "Input and output", "Model and device", "Segments",
                      "Faces", "People", "Engine", "Run control"]  # fmt: skip
    for choices in ("<parquet|csv|jsonl>", "<auto|float32|bfloat16|float16>", "<local|ray>",
                    "<auto|mtcnn|insightface|dlib>", "<video|run>", "<video|silent>",
                    "<auto|cpu|cuda|cuda:N|mps>"):  # fmt: skip
        assert choices in out, choices
    assert "lower accuracy; see README 'Scientific use and limits'" in " ".join(
        out.replace("│", " ").split()
    )


COMMANDS = [(), ("annotate",), ("report",), ("overlay",), ("doctor",), ("evaluate",), ("train",),
            ("export",), ("export", "eaf"), ("export", "srt"), ("export", "vtt"), ("models",),
            ("models", "import"), ("models", "list"), ("models", "info"),
            ("models", "remove")]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mmadfer")
def test_every_command_shows_examples_of_itself(command: tuple[str, ...]) -> None:
    out = _help(*command)
    examples = out[out.index("Examples") :]
    assert f"mmadfer {' '.join(command)}".strip() in examples


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["annotate", "a.mp4", "--out", "r.csv", "--soundtrack", "quiet"], "'video', 'silent'"),
        (["annotate", "a.mp4", "--out", "r.csv", "--format", "xlsx"], "'parquet', 'csv', 'jsonl'"),
        (["annotate", "a.mp4", "--out", "r.csv", "--device", "gpu"], "'cuda:N', 'mps'"),
        (["doctor", "--detector", "haar"], "'auto', 'mtcnn', 'insightface', 'dlib'"),
        (["train", "d.txt", "--val", "v.txt", "--out", "o", "--select", "f1"], "'war', 'uar'"),
    ],
)
def test_a_bad_choice_is_refused_with_the_valid_values(args: list[str], listed: str) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert listed in result.stderr and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_shell_completion_is_offered_and_completes_choices() -> None:
    out = _help()
    assert "--install-completion" in out and "--show-completion" in out
    exe = shutil.which("mmadfer")
    cmd = [exe] if exe else [sys.executable, "-m", "mmadfer_cli"]
    env = {**os.environ, "_MMADFER_COMPLETE": "complete_bash", "COMP_CWORD": "4",
           "COMP_WORDS": "mmadfer annotate a.mp4 --soundtrack "}  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["video", "silent"]
    env["COMP_WORDS"] = "mmadfer annotate a.mp4 --device c"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["cpu", "cuda"]
