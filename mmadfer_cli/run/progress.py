"""What a run tells a person while it goes: progress on stderr, notes and warnings.

The command and the notebook ``annotate()`` show the same bar (videos done,
segments/s, ETA, the current file); ``quiet`` keeps only the warnings.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.run.videos import PipelineEvents, VideoResult, VideoTask


class RunEvents(PipelineEvents):
    """A run's events; the default shows nothing."""

    def starting(self, videos: int) -> None:
        """``videos`` videos are about to run."""

    def note(self, text: str) -> None:
        """Something worth knowing (a resumed run, a stale lock, compiling)."""

    def warning(self, text: str, label: str = "warning") -> None:
        """Something that may be wrong (a detector's warning; ``note``: a stale lock taken over),
        shown even when quiet."""

    def skipped(self, entries: list[tuple[str, str]]) -> None:
        """Folder entries left out that are not regular files: (path, what it is)."""

    def video_done(self, result: VideoResult) -> None:
        """A video's rows are written."""

    def finished(self) -> None:
        """The run ended (however)."""


class ProgressEvents(RunEvents):
    """Rich progress on stderr: videos done, segments/s, ETA, current file; notes and warnings."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.segments = 0
        self.started = time.perf_counter()
        self.progress = Progress(
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("videos · {task.fields[rate]} segments/s · ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", style="dim"),
            console=self.console,
            disable=quiet,
        )
        self.task = self.progress.add_task("annotate", total=0, rate="0.0", current="")

    def starting(self, videos: int) -> None:
        self.started = time.perf_counter()
        self.progress.update(self.task, total=videos)
        self.progress.start()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(escape(terminal_text(text)))

    def warning(self, text: str, label: str = "warning") -> None:
        self.console.print(f"[yellow]{label}:[/] {escape(terminal_text(text))}")

    def skipped(self, entries: list[tuple[str, str]]) -> None:
        self.warning(skipped_summary(entries), label="note")

    def video_started(self, task: VideoTask) -> None:
        self.progress.update(self.task, current=escape(_short(terminal_text(task.video))))

    def segments_done(self, task: VideoTask, count: int) -> None:
        self.segments += count
        rate = self.segments / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, rate=f"{rate:.1f}")

    def video_done(self, result: VideoResult) -> None:
        self.progress.advance(self.task)

    def finished(self) -> None:
        self.progress.stop()


def skipped_summary(entries: list[tuple[str, str]]) -> str:
    """``skipped 3: 2 named pipes, a broken link``: what a folder scan left out, by kind."""
    counts = Counter(kind for _, kind in entries)
    kinds = ", ".join(f"a {kind}" if n == 1 else f"{n} {kind}s" for kind, n in counts.items())
    return f"skipped {len(entries)}: {kinds}"


def _short(video: str, width: int = 30) -> str:
    return video if len(video) <= width else "…" + video[-(width - 1) :]
