"""Hand back a thread's OpenMP threads when its turn at the cores ends.

PyTorch's CPU builds for Linux run each operation on libgomp's OpenMP threads, and libgomp
gives every Python thread that runs a parallel operation its own pool of them, kept until
that thread ends. Its waiting threads spin briefly before they sleep, which makes the many
small operations of face detection cheap to start, but only while the process holds no more
OpenMP threads than there are cores; beyond that every operation wakes its team from sleep.
The CPU pipeline runs the model and the media stages in different threads (``CoreTurns``),
and the thread that loaded the model holds a pool too: measured on 2 cores, MTCNN ran 59
frames/s in a worker thread while another thread kept its pool, and 77 once that pool was
handed back. So a thread releases its pool when its turn ends (``omp_pause_resource_all``,
OpenMP 5.0); its next turn starts new threads, a fraction of a millisecond.

Other OpenMP runtimes (LLVM's on macOS, Microsoft's on Windows) are left alone: LLVM's hard
pause stops every thread's pool, not only the caller's.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

_OMP_PAUSE_HARD = 2
# What the first search with PyTorch loaded found: [the library] or [None].
_found: list[ctypes.CDLL | None] = []


def _libgomp() -> ctypes.CDLL | None:
    """The libgomp this process has loaded (PyTorch's own copy before any other), if any."""
    if _found or not sys.platform.startswith("linux"):
        return _found[0] if _found else None
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = None
    paths = {line.split()[-1] for line in maps.splitlines() if "/libgomp" in line}
    for path in sorted(paths, key=lambda path: ("/torch/" not in path, path)):  # PyTorch's first
        try:
            found = ctypes.CDLL(path)
            found.omp_pause_resource_all.argtypes = [ctypes.c_int]
            break
        except (OSError, AttributeError):
            found = None
    if found is not None or "torch" in sys.modules:
        _found.append(found)
    return found


def release_thread_pool() -> bool:
    """Let the calling thread's OpenMP threads go (libgomp only; not from inside a parallel
    region). True when released, False where there is nothing to do it with."""
    lib = _libgomp()
    return lib is not None and lib.omp_pause_resource_all(_OMP_PAUSE_HARD) == 0
