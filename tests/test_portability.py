"""What Windows lacks, simulated here: the package imports and locks without ``fcntl``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

NO_FCNTL = "import sys; sys.modules['fcntl'] = None  # as on Windows: importing it fails\n"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", NO_FCNTL + code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_command_and_the_api_import_without_fcntl() -> None:
    done = _python(
        "from mmadfer_cli import annotate\n"
        "from mmadfer_cli.cli.app import main\n"
        "sys.argv = ['mmadfer', '--help']\n"
        "main()\n"
    )
    assert done.returncode == 0, done.stderr
    assert "annotate" in done.stdout and "Usage" in done.stdout


def test_the_output_lock_works_without_fcntl(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet.lock"
    done = _python(
        "import json, os\n"
        "from pathlib import Path\n"
        "from mmadfer_cli.table.lock import OutputLock\n"
        "path = Path(sys.argv[1])\n"
        "with OutputLock(path):\n"
        "    assert json.loads(path.read_text())['pid'] == os.getpid()\n"
        "assert not path.exists()\n",
        str(path),
    )
    assert done.returncode == 0, done.stderr
