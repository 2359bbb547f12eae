"""Every option of an annotate run, with its default and its check, in one place.

``mmadfer annotate`` turns its flags into ``AnnotateOptions`` and the notebook
``annotate()`` its keyword arguments; ``run.runner.run`` validates them once
(the messages name the command's flags, which the keyword arguments mirror:
``--min-face-size`` is ``min_face_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmadfer_cli.faces import DETECTORS
from mmadfer_cli.model.inference import PRECISION_CHOICES
from mmadfer_cli.run.clips import SOUNDTRACKS, ClipSettings
from mmadfer_cli.run.reid import DEFAULT_THRESHOLD, SCOPES, ReidSettings
from mmadfer_cli.table.writers import FORMATS, OutputError, detect_format

ENGINES = ("local", "ray")
"""Where a run's chunks run: this machine's threads, or a Ray cluster."""


class UsageError(ValueError):
    """Options, inputs or the output that a run cannot start with (the command's exit code 2)."""


@dataclass(frozen=True)
class AnnotateOptions:
    """The options of ``mmadfer annotate`` (``out=None``: the table stays in memory)."""

    inputs: tuple[Path, ...] = ()
    out: str | None = None
    fmt: str | None = None
    model: str | None = None
    checkpoint: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8
    workers: int = 0  # 0: per 2 CPU cores, at most 8 (a GPU: per core, CUDA 16, MPS 8); bounded
    engine: str = "local"
    ray_address: str | None = None
    actors_per_gpu: int = 1
    chunk: float = 60.0
    compile: bool = False
    window: float = 3.0
    stride: float | None = None
    min_segment: float = 1.0
    soundtrack: str = "video"  # silent: every face gets the sound of a video without audio
    detector: str = "auto"
    face_models: Path | None = None
    face_threshold: float = 0.5
    min_face_size: int = 20
    max_faces: int = 0
    min_face_frames: int = 8
    track_iou: float = 0.3
    max_gap: float = 1.0
    reid: bool = True
    reid_threshold: float = DEFAULT_THRESHOLD
    reid_scope: str = "video"
    recursive: bool = True
    globs: tuple[str, ...] = ()
    resume: bool = True  # False: --overwrite
    stats: Path | None = None  # where to write where the time went (JSON)
    csv_for_spreadsheets: bool = False  # neutralise formula-like text cells of a CSV output

    def validate(self) -> None:
        """Raise ``UsageError`` naming the first option that cannot work."""
        choices = (
            ("--format", self.fmt, FORMATS),
            ("--detector", self.detector, DETECTORS),
            ("--reid-scope", self.reid_scope, SCOPES),
            ("--engine", self.engine, ENGINES),
            ("--soundtrack", self.soundtrack, SOUNDTRACKS),
        )
        for flag, value, allowed in choices:
            if value is not None and value not in allowed:
                raise UsageError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
        if self.precision not in PRECISION_CHOICES:
            raise UsageError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}")
        for flag, value, low, high in (
            ("--batch-size", self.batch_size, 1, None),
            ("--workers", self.workers, 0, None),
            ("--actors-per-gpu", self.actors_per_gpu, 1, None),
            ("--chunk", self.chunk, 0.0, None),
            ("--window", self.window, 0.1, None),
            ("--stride", self.stride, 0.1, None),
            ("--min-segment", self.min_segment, 0.0, None),
            ("--face-threshold", self.face_threshold, 0.0, 1.0),
            ("--min-face-size", self.min_face_size, 1, None),
            ("--max-faces", self.max_faces, 0, None),
            ("--min-face-frames", self.min_face_frames, 1, 16),
            ("--track-iou", self.track_iou, 0.0, 1.0),
            ("--max-gap", self.max_gap, 0.0, None),
            ("--reid-threshold", self.reid_threshold, 0.0, None),
        ):
            if value is not None and (value < low or (high is not None and value > high)):
                span = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise UsageError(f"{flag} must be {span}, not {value}")
        if self.csv_for_spreadsheets and not self._csv_out():
            raise UsageError("--csv-for-spreadsheets needs a CSV --out (a .csv file, or -)")
        if self.compile and self.engine != "local":
            raise UsageError("--compile needs --engine local (Ray's actors run the model as is)")

    def _csv_out(self) -> bool:
        """Whether ``out`` is CSV (an unclear ``out`` counts: the sink refuses it in its words)."""
        if self.out is None:
            return False
        try:
            return detect_format(self.out, self.fmt) == ("csv", False)
        except OutputError:
            return True

    def clip_settings(self) -> ClipSettings:
        """The segment and face settings (recorded with the results)."""
        return ClipSettings(
            window_s=self.window,
            stride_s=self.stride,
            min_segment_s=self.min_segment,
            min_face_frames=self.min_face_frames,
            face_threshold=self.face_threshold,
            min_face_px=self.min_face_size,
            max_faces=self.max_faces,
            track_iou=self.track_iou,
            max_gap_s=self.max_gap,
            detector=self.detector,
            face_models=Path(self.face_models) if self.face_models is not None else None,
            soundtrack=self.soundtrack,
        )

    def reid_settings(self) -> ReidSettings | None:
        """Re-identification's settings; None with ``--no-reid``."""
        return ReidSettings(self.reid_threshold, self.reid_scope) if self.reid else None


DEFAULTS = AnnotateOptions()
"""The defaults, which the command's flags and the notebook ``annotate()`` take from here."""
