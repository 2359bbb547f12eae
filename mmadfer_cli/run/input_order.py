"""Finished videos handed on in the order of the inputs, for ``--reid-scope run``.

With the run scope, each video's people are matched to the people of the videos matched
before it, so the person numbers depend on that order. Videos finish in an order that
varies between runs with several workers (and between engines); matching them in the
order of the inputs gives the same numbers on every run. A video that finishes early
waits, rows in memory, until the videos before it are done.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmadfer_cli.run.videos import VideoResult, VideoTask


class InputOrder:
    """Holds finished videos until every video before them (in ``tasks``' order) is done."""

    def __init__(self, tasks: Sequence[VideoTask]) -> None:
        self._order = [task.index for task in tasks]
        self._next = 0
        self._held: dict[int, VideoResult] = {}

    def ready(self, result: VideoResult) -> list[VideoResult]:
        """``result`` and the held videos it lets go, in input order; none while a video
        before it is still running."""
        self._held[result.task.index] = result
        out = []
        while self._next < len(self._order) and self._order[self._next] in self._held:
            out.append(self._held.pop(self._order[self._next]))
            self._next += 1
        return out

    def rest(self) -> list[VideoResult]:
        """The videos still held, in input order: a run that stops early keeps them too."""
        out = [self._held[index] for index in self._order if index in self._held]
        self._held.clear()
        return out
