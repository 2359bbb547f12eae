"""``mmadfer overlay`` on a short generated video whose result rows put a face box where a square is."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.media.video import video_id
from mmadfer_cli.reporting.overlay_video import FrameBoxes
from mmadfer_cli.reporting.palette import EMOTION_COLORS
from mmadfer_cli.table.schema import row_schema
from mmadfer_cli.table.writers import write_table
from tests.results_helpers import CLASSES, VIDEO_A, synthetic_rows

FPS, SECONDS, SIZE, RATE = 25, 2.4, (320, 240), 16000
BOX_A, BOX_B = (20.0, 60.0, 60.0, 80.0), (180.0, 60.0, 60.0, 80.0)  # x, y, w, h
runner = CliRunner()


def _write_video(path: Path, seed: int = 0) -> None:
    """Grey frames with a white square gliding from BOX_A to BOX_B, and a 440 Hz tone."""
    frames = round(FPS * SECONDS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        for i in range(frames):
            image = np.full((SIZE[1], SIZE[0], 3), 90 + seed, np.uint8)
            x = int(BOX_A[0] + (BOX_B[0] - BOX_A[0]) * i / (frames - 1))
            image[70:130, x + 10 : x + 50] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        t = np.arange(round(RATE * SECONDS)) / RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        sound = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        sound.sample_rate, sound.pts = RATE, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())


def _results(path: Path, video: Path) -> None:
    vid = video_id(video)

    def ok(seg: int, span: tuple[float, float], box: tuple, probs: tuple) -> dict:
        best = int(np.argmax(probs))
        return {"video": str(video), "video_id": vid, "track_id": 3, "segment": seg,
                "start_s": span[0], "end_s": span[1], "status": "ok", "label": CLASSES[best],
                "confidence": probs[best], **{f"prob_{c}": p for c, p in zip(CLASSES, probs, strict=True)},
                "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3]}  # fmt: skip

    rows = [
        ok(0, (0.0, 1.2), BOX_A, (0.8, 0.1, 0.1)),
        ok(1, (1.2, 2.4), BOX_B, (0.1, 0.8, 0.1)),
        *synthetic_rows()[:2],  # another video in the same table
    ]
    write_table(pa.Table.from_pylist(rows, schema=row_schema(CLASSES)), path, "parquet")


def overlay_inputs(root: Path) -> tuple[Path, Path]:
    """A short video of a moving square and a result table for it, in ``root``."""
    video, results = root / "square.mp4", root / "results.parquet"
    _write_video(video)
    _results(results, video)
    return video, results


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return overlay_inputs(tmp_path_factory.mktemp("overlay"))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _near(frame: np.ndarray, x: float, y: float, color: str, tolerance: int = 40) -> bool:
    """Whether a pixel within 2 px of (x, y) has about this colour (H.264 smears thin lines)."""
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    x, y = round(x), round(y)
    patch = frame[y - 2 : y + 3, x - 2 : x + 3].astype(int)
    return bool((np.abs(patch - rgb).max(axis=2) < tolerance).any())


def test_overlay_keeps_frames_duration_and_sound_and_draws_the_boxes(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    video, results = made
    out = tmp_path / "annotated.mp4"
    result = runner.invoke(app, ["overlay", str(video), str(results), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    with av.open(str(video)) as src, av.open(str(out)) as dst:
        assert dst.streams.video[0].codec_context.name == "h264"
        assert dst.duration == pytest.approx(src.duration, abs=0.05 * 1e6)
        assert dst.streams.audio[0].codec_context.name == "aac"
        assert dst.streams.audio[0].rate == RATE
    before, after = _frames(video), _frames(out)
    assert len(after) == len(before) == round(FPS * SECONDS)
    gold, blue = EMOTION_COLORS["happiness"], EMOTION_COLORS["sadness"]
    x, y, w, h = BOX_A
    # First frame: the box of segment 0 (held before its middle), in the label's colour.
    assert _near(after[0], x, y + h / 2, gold) and _near(after[0], x + w, y + h / 2, gold)
    assert not _near(before[0], x, y + h / 2, gold)
    # At 1.2 s (frame 30), halfway between the segments' middles: the box has moved halfway.
    halfway = (BOX_A[0] + BOX_B[0]) / 2
    assert _near(after[30], halfway, y + h / 2, blue) and not _near(after[30], x, y + h / 2, gold)
    # Away from the boxes and captions the picture is unchanged.
    assert np.abs(after[0][200:, 250:].astype(int) - before[0][200:, 250:]).max() < 12


def test_boxes_are_interpolated_only_within_a_run_of_segments() -> None:
    table = pa.Table.from_pylist(synthetic_rows(), schema=row_schema(CLASSES)).to_pandas()
    boxes = FrameBoxes(table[table["video"] == VIDEO_A])
    # Person 2 of video A: segments 0 and 3, not adjacent: boxes are held, never interpolated.
    person2 = {p.person: p for p in boxes.at(2.9)}["person 2"]
    assert person2.box[0] == 10 + 20 * 2 + 0 and person2.label == "sadness"
    assert "person 2" not in {p.person for p in boxes.at(4.0)}
    # Person 1: segments 0 and 1 adjacent: at 3.0 s, halfway between their middles (1.5, 4.5).
    person1 = {p.person: p for p in boxes.at(3.0)}["person 1"]
    assert person1.box[0] == pytest.approx((30.0 + 31.0) / 2) and person1.label == "happiness"
    assert boxes.at(7.0) == [] and boxes.status_at(7.0) == "no_face"


def test_a_different_video_is_refused_with_exit_2(made: tuple[Path, Path], tmp_path: Path) -> None:
    _, results = made
    other = tmp_path / "other.mp4"
    _write_video(other, seed=40)
    out = tmp_path / "x.mp4"
    result = runner.invoke(app, ["overlay", str(other), str(results), "--out", str(out)])
    assert result.exit_code == 2
    assert f"content id {video_id(other)}" in result.stderr and "is not in" in result.stderr
    assert not out.exists()
