"""Keep freed memory in the process, so the model's next batch does not fault it back in.

glibc's malloc serves large blocks (the model's activations: tens to hundreds of MB a
batch) with fresh ``mmap`` pages and returns them to the kernel on free, so every CPU
batch pays for zeroing its pages again: measured on a 2-core machine, the full model ran
0.44 clips/s with 18 s of 65 in the kernel, and 0.77 clips/s with none once the blocks
stay on the heap. The peak memory is unchanged; it is only kept for reuse.

The model and the media stages run in threads, and glibc gives threads their own arenas
of at most 64 MB heaps, which cannot keep a block of hundreds of MB: a batch of 8 clips
ran 1.63 s a clip in a thread against 1.13 s in the main thread. One arena for every
thread keeps their blocks too (1.05 s in a thread; MTCNN 51 against 41 frames/s). glibc
fixes its arena count when a second thread first allocates (importing numpy starts one),
so the command asks for it first thing (``one_arena``, in ``mmadfer_cli.cli``); a notebook
gets the same with ``MALLOC_ARENA_MAX=1`` in the environment of the Python it starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_KEEP_BYTES = 2**31 - 1  # mallopt takes an int: the heap top kept free before trimming


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve every block from the heap and keep freed ones (a process-wide
    setting: a run on the CPU makes it, from the command or the API). False where the C library
    is not glibc."""
    return _mallopt((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP_BYTES))


def one_arena() -> bool:
    """Tell glibc's malloc to give every thread the same arena. It counts only before a second
    thread allocates: call it before importing numpy or torch. False where it cannot be set."""
    return _mallopt((_M_ARENA_MAX, 1))


def _mallopt(*settings: tuple[int, int]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all([bool(mallopt(option, value)) for option, value in settings])
