"""The CPU allocator setting is applied where the C library is glibc (its speed-up, 1.2x to 1.75x
for the full model on two cores, is measured by benchmarks/allocator.py, not asserted)."""

from __future__ import annotations

import platform
import sys

import pytest

from mmadfer_cli.run.allocator import keep_freed_memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_takes_the_setting() -> None:
    assert keep_freed_memory() is True
