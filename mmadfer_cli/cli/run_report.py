"""What ``mmadfer annotate`` prints on stderr: its progress (``CommandEvents``), and at the end
how the run stopped, the summary, and what failed or is damaged (``print_report``)."""

from __future__ import annotations

import sys
import traceback

from rich.console import Console
from rich.markup import escape

from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.media.video import seconds_span
from mmadfer_cli.plural import counted
from mmadfer_cli.run.progress import ProgressEvents, skipped_summary
from mmadfer_cli.run.runner import RunReport
from mmadfer_cli.run.videos import VideoResult

err = Console(stderr=True)


class CommandEvents(ProgressEvents):
    """The progress bar, and with ``--debug`` the traceback of each video's internal error;
    with ``--verbose`` every entry a folder scan skipped."""

    def __init__(self, quiet: bool, debug: bool, verbose: bool) -> None:
        super().__init__(quiet, err)
        self.debug = debug
        self.verbose = verbose

    def skipped(self, entries: list[tuple[str, str]]) -> None:
        if not self.verbose:
            self.warning(f"{skipped_summary(entries)} (--verbose lists them)", label="note")
            return
        self.warning(f"{skipped_summary(entries)}:", label="note")
        for path, kind in entries:
            err.print(f"  {escape(terminal_text(path))}: a {kind}", soft_wrap=True)

    def video_done(self, result: VideoResult) -> None:
        if result.exception is not None and self.debug:
            _print_traceback(result.exception)
        super().video_done(result)


def _summary(report: RunReport) -> None:
    """The run in two lines: what was annotated, and where the time went."""
    results, stats, skipped, wall = report.results, report.stats, report.skipped, report.wall_s
    where = terminal_text(str(report.where or "stdout"))
    videos = len(results)
    if not videos:
        err.print(
            f"Nothing to do: {counted(skipped, 'video')}, all done by an earlier run of this "
            f"command (--overwrite starts again). Results: {escape(where)}"
        )
        return
    failed = sum(r.error is not None for r in results)
    damaged = sum(bool(r.damaged) for r in results)
    segments = sum(r.segments for r in results)
    tracks = sum(r.tracks for r in results)
    rate = segments / wall if wall > 0 else 0.0
    resumed = f", {skipped} already done" if skipped else ""
    err.print(
        f"Annotated {videos - failed} of {counted(videos, 'video')}{resumed}: "
        f"{counted(segments, 'segment')}, {counted(tracks, 'person track')}, "
        f"{counted(stats.clips, 'face clip')}, {failed} failed"
        f"{f', {damaged} with damaged stretches' if damaged else ''}; "
        f"{wall:.1f} s ({rate:.2f} segments/s). Results: {escape(where)}"
    )
    if stats.batches:
        # Where the time went, to tune --workers and --batch-size: a model busy most of the
        # wall time wants a faster device; a model mostly idle wants more workers.
        err.print(
            f"Time: model {stats.model_s:.1f} s in {counted(stats.batches, 'batch', 'batches')} "
            f"({stats.clips / stats.batches:.1f} clips per batch, busy "
            f"{100 * stats.model_s / wall if wall > 0 else 0:.0f}% of the wall time); "
            f"decoding, faces and audio {stats.produce_s:.1f} s summed over the workers.",
            soft_wrap=True,
        )


def print_report(report: RunReport, quiet: bool, debug: bool) -> None:
    """The end of a run on stderr: how it stopped, the summary, then what failed or is damaged."""
    stop = report.stop
    if stop is not None and stop.kind in ("interrupted", "terminated"):
        err.print(f"[yellow]{stop.kind.capitalize()}:[/] {escape(terminal_text(stop.message))}")
    elif stop is not None and stop.kind in ("write", "internal"):
        if debug and stop.exception is not None:
            _print_traceback(stop.exception)
        hint = "" if debug else " Rerun with --debug for the traceback (and please report it)."
        hint = hint if stop.kind == "internal" else ""
        err.print(f"[red]error:[/] {escape(terminal_text(stop.message))}{hint}", soft_wrap=True)
    elif stop is None and not quiet:
        _summary(report)
    if report.ray is not None and not quiet:
        err.print(
            f"Ray: {counted(report.ray.services, 'service actor')}; object store peak "
            f"{report.ray.object_store_peak / 2**20:.0f} MiB."
        )
    if report.damage:
        err.print(
            f"[yellow]Damaged stretches in {counted(len(report.damage), 'video')}[/] "
            "(their segments there are error rows, the others are annotated):"
        )
        for name, stretches in report.damage:
            err.print(f"  {escape(terminal_text(_damage_line(name, stretches)))}", soft_wrap=True)
    if report.failures:
        err.print(f"[red]{counted(len(report.failures), 'video')} failed:[/]")
        for name, reason in report.failures:
            # Media errors already start with the path; do not print it twice.
            line = reason if reason.startswith(name) else f"{name}: {reason}"
            err.print(f"  {escape(terminal_text(line))}", soft_wrap=True)  # paths stay whole
        if not debug and any(r.startswith("internal error") for _, r in report.failures):
            err.print(
                "Rerun with --debug for the tracebacks of internal errors (and please report them)."
            )


def _damage_line(name: str, stretches: list[tuple[float, float, str]]) -> str:
    """One line for a partly damaged video: how many segments, where, and the first reason."""
    start, end = stretches[0][0], stretches[-1][1]
    first = "" if len(stretches) == 1 else "first: "
    return (
        f"{name}: {counted(len(stretches), 'segment')} in {seconds_span(start, end)} could not "
        f"be read; {first}{stretches[0][2]}"
    )


def _print_traceback(exc: BaseException) -> None:
    lines = "".join(traceback.format_exception(exc)).splitlines()
    sys.stderr.write("".join(terminal_text(line) + "\n" for line in lines))
    sys.stderr.flush()
