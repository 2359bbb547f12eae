"""Counted nouns: one video, two videos, in every message that states a count."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from mmadfer_cli.cli import run_report
from mmadfer_cli.plural import agree, counted
from mmadfer_cli.recipe.labelled_data import DataError, _raise_collected
from mmadfer_cli.run.runner import RunReport, _kept
from mmadfer_cli.run.videos import PipelineStats, VideoResult, VideoTask
from mmadfer_cli.table.schema import RunInfo

RUN = RunInfo("m", "0" * 64, ("a", "b"), {}, "0", "0")


@pytest.mark.parametrize(
    ("count", "words", "expected"),
    [
        (1, ("video",), "1 video"),
        (0, ("video",), "0 videos"),
        (2, ("person track",), "2 person tracks"),
        (1, ("batch", "batches"), "1 batch"),
        (3, ("batch", "batches"), "3 batches"),
        (1, ("person", "people"), "1 person"),
        (6, ("person", "people"), "6 people"),
        (1.0, ("CPU",), "1 CPU"),
        (2.5, ("GPU",), "2.5 GPUs"),
    ],
)
def test_counted_agrees_with_its_number(
    count: float, words: tuple[str, ...], expected: str
) -> None:
    assert counted(count, *words) == expected


def test_agree_gives_the_verb_of_a_count() -> None:
    assert [agree(n, "is", "are") for n in (0, 1, 2)] == ["are", "is", "are"]


def _summary(monkeypatch: pytest.MonkeyPatch, videos: int, each: int) -> str:
    """annotate's closing summary of ``videos`` videos of ``each`` segment, track and clip."""
    results = [
        VideoResult(VideoTask(i, f"v{i}.mp4", Path(f"v{i}.mp4")), "id", [], None, each, each, each)
        for i in range(videos)
    ]
    stats = PipelineStats(clips=videos * each, batches=videos, model_s=1.0)
    screen = io.StringIO()
    monkeypatch.setattr(run_report, "err", Console(file=screen, width=400))
    run_report._summary(RunReport(RUN, results=results, stats=stats, wall_s=2.0))
    return " ".join(screen.getvalue().split())


def test_the_run_summary_is_singular_for_one_and_plural_for_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = _summary(monkeypatch, 1, 1)
    assert "Annotated 1 of 1 video: 1 segment, 1 person track, 1 face clip, 0 failed" in one
    assert "model 1.0 s in 1 batch (" in one
    two = _summary(monkeypatch, 2, 2)
    assert "Annotated 2 of 2 videos: 4 segments, 4 person tracks, 4 face clips" in two
    assert "in 2 batches (" in two


def test_stop_messages_and_data_errors_count_in_words() -> None:
    assert _kept(RunReport(RUN), 0, ["a.mp4"]) == ("; 1 video done before this run", 1)
    assert _kept(RunReport(RUN), 0, ["a.mp4", "b.mp4"]) == ("; 2 videos done before this run", 2)
    with pytest.raises(DataError, match=r"list\.txt: 1 bad line:"):
        _raise_collected(Path("list.txt"), ["line 3: no such folder"])
    with pytest.raises(DataError, match=r"list\.txt: 2 bad lines:"):
        _raise_collected(Path("list.txt"), ["line 3: x", "line 4: y"])
