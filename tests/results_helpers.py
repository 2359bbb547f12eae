"""A small fixed result table (several people, no-face and error rows) for report and export tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmadfer_cli.table.schema import row_schema

CLASSES = ("happiness", "sadness", "neutral")
VIDEO_A = "clips/a.mp4"
VIDEO_B = "clips/b été & <co>.mp4"  # odd characters for file names and HTML
VIDEO_C = "broken.mp4"


def _ok(
    video: str,
    vid: str,
    seg: int,
    span: tuple[float, float],
    track: int,
    probs: tuple,
    classes: tuple[str, ...] = CLASSES,
) -> dict:
    best = max(range(len(classes)), key=lambda i: probs[i])
    return {
        "video": video,
        "video_id": vid,
        "track_id": track,
        "segment": seg,
        "start_s": span[0],
        "end_s": span[1],
        "status": "ok",
        "label": classes[best],
        "confidence": probs[best],
        **{f"prob_{c}": p for c, p in zip(classes, probs, strict=True)},
        "face_frames": 16,
        "face_score": 0.9,
        "bbox_x": 10.0 + 20 * track + seg,
        "bbox_y": 20.0,
        "bbox_w": 30.0,
        "bbox_h": 40.0,
        "has_audio": True,
    }


def _no_face(video: str, vid: str, seg: int, span: tuple[float, float]) -> dict:
    return {
        "video": video,
        "video_id": vid,
        "segment": seg,
        "start_s": span[0],
        "end_s": span[1],
        "status": "no_face",
        "has_audio": True,
    }


def synthetic_rows() -> list[dict[str, Any]]:
    """Video A: tracks 1 and 2, a no-face segment; video B: a no-face then track 0; video C failed."""
    a, b = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
    return [
        _ok(VIDEO_A, a, 0, (0.0, 3.0), 1, (0.7, 0.2, 0.1)),
        _ok(VIDEO_A, a, 0, (0.0, 3.0), 2, (0.1, 0.6, 0.3)),
        _ok(VIDEO_A, a, 1, (3.0, 6.0), 1, (0.5, 0.3, 0.2)),
        _no_face(VIDEO_A, a, 2, (6.0, 9.0)),
        _ok(VIDEO_A, a, 3, (9.0, 10.5), 1, (0.2, 0.2, 0.6)),
        _ok(VIDEO_A, a, 3, (9.0, 10.5), 2, (0.1, 0.1, 0.8)),
        _no_face(VIDEO_B, b, 0, (0.0, 3.0)),
        _ok(VIDEO_B, b, 1, (3.0, 5.0), 0, (0.2, 0.7, 0.1)),
        {
            "video": VIDEO_C,
            "video_id": "cccccccccccccccc",
            "status": "error",
            "error": "not a video",
        },
    ]


def synthetic_table() -> pa.Table:
    return pa.Table.from_pylist(synthetic_rows(), schema=row_schema(CLASSES))


def assert_same_rows(a: pa.Table, b: pa.Table) -> None:
    """Same rows; floats equal up to float rounding (batches may be composed differently; with
    another --workers the face detector runs with another thread count)."""
    assert a.schema.names == b.schema.names and a.num_rows == b.num_rows
    for name in a.schema.names:
        x, y = a[name].to_pylist(), b[name].to_pylist()
        if pa.types.is_floating(a.schema.field(name).type):
            assert [v is None for v in x] == [v is None for v in y], name
            np.testing.assert_allclose(
                [v for v in x if v is not None],
                [v for v in y if v is not None],
                rtol=1e-6,
                atol=1e-5,
            )
        else:
            assert x == y, name


def synthetic_results(folder: Path, fmt: str = "parquet", table: pa.Table | None = None) -> Path:
    """``table`` (``synthetic_table`` by default) written as ``folder/results.<fmt>``, as
    annotate would write it."""
    from mmadfer_cli.table.writers import write_table

    path = folder / f"results.{fmt}"
    write_table(synthetic_table() if table is None else table, path, fmt)  # type: ignore[arg-type]
    return path


DFEW_CLASSES = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")


def long_table(
    videos: int, minutes: float, persons: int, seed: int = 0, probs: Sequence[float] | None = None
) -> pa.Table:
    """``videos`` videos of ``minutes`` each in 3 s segments, ``persons`` people who leave the
    picture now and then, a no-face segment in every 20, and random probabilities of the 7 DFEW
    classes (or ``probs`` in every row): a table of the size real use gives, for timing the
    report and drawing long timelines."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for v in range(videos):
        video, vid = f"videos/session {v:03d}.mp4", f"{v:016x}"
        for seg in range(round(minutes * 20)):
            span = (3.0 * seg, 3.0 * seg + 3.0)
            if seg % 20 == 19:
                rows.append(_no_face(video, vid, seg, span))
                continue
            for track in range(persons):
                if track == 0 or rng.random() > 0.1:  # the others leave the picture at times
                    p = probs or rng.dirichlet(np.ones(len(DFEW_CLASSES))).tolist()
                    rows.append(_ok(video, vid, seg, span, track, tuple(p), DFEW_CLASSES))
    return pa.Table.from_pylist(rows, schema=row_schema(DFEW_CLASSES))
