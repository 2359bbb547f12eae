"""Why a video or a chunk failed, in one line: the same words whichever engine ran it.

Expected failures (a file that is not a video, damage, no permission) are the
message alone; anything else is a bug, reported as the stage it came from and
the error, with the exception kept for ``--debug``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mmadfer_cli.media.discover import path_text
from mmadfer_cli.media.video import MediaError

# Where an unexpected error happened, by the innermost module of ours it passed through.
_STAGES = (
    ("mmadfer_cli.media.video", "decoding"),
    ("mmadfer_cli.media.segments", "segment planning"),
    ("mmadfer_cli.faces.tracking", "face tracking"),
    ("mmadfer_cli.faces.crops", "face crops"),
    ("mmadfer_cli.faces.embedding", "face embeddings"),
    ("mmadfer_cli.run.stitch", "track stitching"),
    ("mmadfer_cli.faces", "face detection"),
    ("mmadfer_cli.media.fbank", "audio filterbank"),
    ("mmadfer_cli.model", "model"),
)


def expected(exc: BaseException) -> bool:
    """Whether an error is a known way for input to be unusable (no traceback is of use)."""
    return isinstance(exc, (MediaError, OSError))


def failing_stage(exc: BaseException, default: str = "media stages") -> str:
    """The stage an unexpected error came from, for a one-line report."""
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    for module in reversed(modules):
        for prefix, stage in _STAGES:
            if module == prefix or module.startswith(prefix + "."):
                return stage
    return default


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return path_text(text.splitlines()[0]) if text else ""


def _named(exc: BaseException) -> str:
    """``Type: first line`` of an unexpected error (the type alone when it has no message)."""
    text = _first_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_message(exc: BaseException) -> str:
    """A one-line reason for an error row: the message alone for expected media errors; for an
    unexpected error, the stage it came from and the error."""
    if expected(exc):
        return _first_line(exc) or type(exc).__name__
    return f"internal error in {failing_stage(exc)}: {_named(exc)}"


@dataclass
class Failure:
    """Why a video could not be planned or a chunk not run (the message of its error row)."""

    message: str
    exception: BaseException | None  # an unexpected error, kept for --debug (None: expected)


def failure(exc: BaseException, node: str | None = None) -> Failure:
    """An error as its row's message; on a cluster (``node``), a file that node cannot read names
    it (shared storage missing there)."""
    message = error_message(exc)
    if node is not None and isinstance(exc, OSError):
        message = f"{message} (on node {node})"
    return Failure(message, None if expected(exc) else exc)


class PipelineError(Exception):
    """An unexpected error that stops the run (the model failed, a worker could not start)."""

    def __init__(self, stage: str, videos: Sequence[str], cause: BaseException) -> None:
        where = f" while annotating {', '.join(videos)}" if videos else ""
        super().__init__(f"internal error in {stage}{where}: {_named(cause)}")
        self.cause = cause


def os_reason(exc: OSError) -> str:
    """What went wrong with a file, in words (pyarrow's errors carry no strerror)."""
    if exc.strerror:
        name = f" ({path_text(exc.filename)})" if exc.filename else ""
        return f"{exc.strerror}{name}"
    return path_text(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
