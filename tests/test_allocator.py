"""The CPU allocator settings are applied where the C library is glibc (their speed-up, 1.2x to
1.75x for the full model on two cores and 1.5x for its batches in a thread, is measured by
benchmarks, not asserted)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from mmadfer_cli.run.allocator import keep_freed_memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_takes_the_setting() -> None:
    assert keep_freed_memory() is True


# How many arenas malloc has once threads allocated (malloc_info lists each as a heap).
ARENAS_AFTER_THREADS = """
import ctypes, os, threading
{first}
import numpy, torch  # imports that start threads
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = libc.fdopen.restype = ctypes.c_void_p
blocks = []
def work():
    blocks.extend(libc.malloc(10000) for _ in range(1000))
    torch.ones(3000, 3000).sum()
thread = threading.Thread(target=work)
thread.start()
thread.join()
read, write = os.pipe()
stream = ctypes.c_void_p(libc.fdopen(write, b"w"))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(os.read(read, 1 << 20).decode().count("<heap nr="))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
@pytest.mark.parametrize(("first", "one"), [("import mmadfer_cli.cli", True), ("", False)])
def test_the_command_gives_all_its_threads_one_arena(first: str, one: bool) -> None:
    # The model's batches run in a thread: in a thread's own arena their blocks are not kept.
    code = ARENAS_AFTER_THREADS.format(first=first)
    arenas = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)  # fmt: skip
    assert (arenas == 1) is one
