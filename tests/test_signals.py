"""SIGTERM and SIGHUP become ``Terminated`` within a command, once, and only there."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from mmadfer_cli.run.signals import SIGNALS, Terminated, terminating_on_signals

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.kill sends no signal there")


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_raises_terminated_once_and_the_old_handler_comes_back(signum: int) -> None:
    caught: list[int] = []
    previous = signal.signal(signum, lambda s, _: caught.append(s))
    try:
        with pytest.raises(Terminated) as raised, terminating_on_signals():
            try:
                os.kill(os.getpid(), signum)  # its handler runs as os.kill returns
            finally:  # the clean-up, which a second signal must not cut short
                os.kill(os.getpid(), signum)
        assert raised.value.signal_name == signal.Signals(signum).name
        os.kill(os.getpid(), signum)
        assert caught == [signum]
    finally:
        signal.signal(signum, previous)


def test_sighup_is_handled_where_it_exists() -> None:
    names = {signal.Signals(s).name for s in SIGNALS}
    assert names == ({"SIGTERM", "SIGHUP"} if hasattr(signal, "SIGHUP") else {"SIGTERM"})
