"""The CPU allocator settings are applied where the C library is glibc (their speed-up, 1.2x to
1.75x for the full model on two cores and 1.5x for its batches in a thread, is measured by
benchmarks, not asserted)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


def _glibc(at_least: tuple[int, int] = (2, 0)) -> bool:
    name, version = platform.libc_ver()
    found = tuple(int(part) for part in version.split(".")[:2]) if version else (0, 0)
    return sys.platform.startswith("linux") and name == "glibc" and found >= at_least


@pytest.mark.skipif(not _glibc((2, 33)), reason="glibc 2.33 or later (mallinfo2)")
@pytest.mark.parametrize("kept", [True, False])
def test_freed_blocks_stay_on_the_heap_with_the_setting(kept: bool) -> None:
    # A 64 MB block is mmap-ed and handed back on free by default; with the setting it comes
    # from the heap and stays there for the next batch (mallinfo2's free heap bytes).
    code = KEPT_AFTER_FREE.format(call="assert keep_freed_memory() is True" if kept else "")
    free = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout)  # fmt: skip
    assert (free >= 64 << 20) is kept


KEPT_AFTER_FREE = """
import ctypes
from mmadfer_cli.run.allocator import keep_freed_memory
{call}
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
block = libc.malloc(64 << 20)
ctypes.memset(block, 1, 64 << 20)
libc.free(ctypes.c_void_p(block))
print(libc.mallinfo2().fordblks)
"""


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


@pytest.mark.skipif(not _glibc(), reason="glibc only")
@pytest.mark.parametrize(("first", "one"), [("import mmadfer_cli.cli", True), ("", False)])
def test_the_command_gives_all_its_threads_one_arena(first: str, one: bool) -> None:
    # The model's batches run in a thread: in a thread's own arena their blocks are not kept.
    code = ARENAS_AFTER_THREADS.format(first=first)
    arenas = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)  # fmt: skip
    assert (arenas == 1) is one
