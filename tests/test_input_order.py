"""``--reid-scope run`` numbers people the same whatever order the videos finish in: they are
matched in input order (run/input_order.py)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmadfer_cli.run.input_order import InputOrder
from mmadfer_cli.run.progress import RunEvents
from mmadfer_cli.run.reid import People, ReidSettings
from mmadfer_cli.run.runner import RunReport, _consume
from mmadfer_cli.run.signals import Terminated
from mmadfer_cli.run.videos import VideoResult, VideoTask
from mmadfer_cli.table.schema import RunInfo
from mmadfer_cli.table.sinks import MemorySink
from tests.test_reid import _rows

TASKS = [VideoTask(i, f"v{i}.mp4", Path(f"v{i}.mp4")) for i in range(3)]


def _result(task: VideoTask, rows: list[dict] | None = None) -> VideoResult:
    return VideoResult(task, "0" * 16, rows or [], None, 0, 0, 0)


def test_a_video_is_handed_on_once_those_before_it_are_done() -> None:
    order = InputOrder(TASKS)
    assert order.ready(_result(TASKS[2])) == []
    assert [r.task.index for r in order.ready(_result(TASKS[0]))] == [0]
    assert [r.task.index for r in order.ready(_result(TASKS[1]))] == [1, 2]
    held = InputOrder(TASKS)
    held.ready(_result(TASKS[2]))
    held.ready(_result(TASKS[1]))
    assert [r.task.index for r in held.rest()] == [1, 2] and held.rest() == []


def _videos() -> list[VideoResult]:
    """Three videos of two people, a and b, seen in different combinations."""
    a, b = np.zeros(128), np.full(128, 0.1)
    people = [(b,), (a, b), (a,)]
    return [
        _result(task, [r for t, v in enumerate(vs) for r in _rows(t, range(2), v, task.video)])
        for task, vs in zip(TASKS, people, strict=True)
    ]


def _person_ids(finish_order: tuple[int, ...], stop_after: int | None = None) -> dict:
    run = RunInfo("m", "0" * 64, ("a", "b"), {}, "0", "0")
    prepared = SimpleNamespace(run=run, people=People(ReidSettings(scope="run")))
    videos = _videos()

    def results():
        for k, i in enumerate(finish_order):
            if k == stop_after:
                raise Terminated(15)
            yield videos[i]

    report = RunReport(run)
    _consume(results(), prepared, MemorySink(run.schema()),  # type: ignore[arg-type]
             (TASKS, [t.video for t in TASKS]), report, RunEvents())  # fmt: skip
    return {(r.task.video, row["track_id"]): row["person_id"]
            for r in report.results for row in r.rows}  # fmt: skip


def test_run_scope_person_ids_do_not_depend_on_the_finishing_order() -> None:
    first = _person_ids((0, 1, 2))
    assert first[("v0.mp4", 0)] == 0 and first[("v1.mp4", 1)] == 0  # b: first seen in v0
    for finish_order in itertools.permutations(range(3)):
        assert _person_ids(finish_order) == first


@pytest.mark.parametrize("finish_order", [(2, 1, 0), (1, 2, 0)])
def test_videos_held_for_the_order_are_kept_when_the_run_stops(finish_order) -> None:
    # Video 0 never finishes: the two done after it was due are still written.
    ids = _person_ids(finish_order, stop_after=2)
    assert {video for video, _ in ids} == {"v1.mp4", "v2.mp4"}
