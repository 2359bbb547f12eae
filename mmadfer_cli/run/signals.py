"""SIGTERM and SIGHUP stop a run the way Ctrl-C does: finished work kept, the lock released.

Schedulers (SLURM, Kubernetes, systemd) stop a job with SIGTERM, and a closed
terminal sends SIGHUP; by default either kills the process at once, leaving the
lock file and no word. ``terminating_on_signals`` turns them, for the length of
a command, into ``Terminated``, which the runner handles as it handles
``KeyboardInterrupt``. SIGHUP does not exist on Windows.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM, SIGHUP); a BaseException, like
    ``KeyboardInterrupt``, so that no ``except Exception`` swallows it."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


@contextlib.contextmanager
def terminating_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` in the main thread, once (a
    second signal does not cut short the clean-up of the first); the previous handlers come
    back after. Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
