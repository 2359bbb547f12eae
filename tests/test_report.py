"""Summaries, timelines and ``mmadfer report`` on a small fixed table whose numbers are known."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.reporting.summary import covered_seconds, summarize, summarize_videos
from mmadfer_cli.reporting.timeline import EMOTION_COLORS, plot_timeline
from mmadfer_cli.table.read import read_results
from tests.results_helpers import VIDEO_A, VIDEO_B, VIDEO_C, synthetic_results, synthetic_table

runner = CliRunner()


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    return synthetic_results(tmp_path, "parquet")


def test_summary_equals_the_hand_computed_values(results: Path) -> None:
    people = summarize(read_results(results)).set_index(["video", "track_id"])
    assert list(people.index) == [(VIDEO_A, 1), (VIDEO_A, 2), (VIDEO_B, 0)]  # no row for C
    a1, a2, b0 = (people.loc[k] for k in people.index)
    # Person 1 of A: segments 0, 1 and 3 (3 + 3 + 1.5 s); happiness twice, neutral once.
    assert a1["seconds_seen"] == 7.5 and a1["segments"] == 3
    assert (a1["first_s"], a1["last_s"]) == (0.0, 10.5)
    assert a1["share_happiness"] == pytest.approx(2 / 3)
    assert a1["share_neutral"] == pytest.approx(1 / 3) and a1["share_sadness"] == 0
    assert a1["mean_prob_happiness"] == pytest.approx((0.7 + 0.5 + 0.2) / 3)
    assert a1["mean_prob_sadness"] == pytest.approx((0.2 + 0.3 + 0.2) / 3)
    assert a1["mean_confidence"] == pytest.approx((0.7 + 0.5 + 0.6) / 3)
    assert a1["dominant_emotion"] == "happiness"
    # Person 2 of A: sadness once, neutral once; the tie goes to the higher mean probability.
    assert a2["seconds_seen"] == 4.5 and a2["share_sadness"] == 0.5
    assert a2["mean_prob_neutral"] == pytest.approx(0.55) and a2["dominant_emotion"] == "neutral"
    # Video A has 3 s without a face out of 10.5 s; video B 3 s of 5 s.
    assert a1["video_no_face_share"] == pytest.approx(3 / 10.5)
    assert b0["video_no_face_share"] == pytest.approx(0.6) and b0["seconds_seen"] == 2.0


def test_video_table_lists_every_video_with_its_errors(results: Path) -> None:
    videos = summarize_videos(read_results(results)).set_index("video")
    assert list(videos.index) == [VIDEO_A, VIDEO_B, VIDEO_C]
    assert videos.loc[VIDEO_A, "persons"] == 2 and videos.loc[VIDEO_A, "segments"] == 4
    assert videos.loc[VIDEO_A, "duration_s"] == 10.5 and videos.loc[VIDEO_A, "no_face_s"] == 3.0
    # A: happiness 2, neutral 2, sadness 1; neutral has the higher mean probability (0.4 > 0.32).
    assert videos.loc[VIDEO_A, "dominant_emotion"] == "neutral"
    assert (
        videos.loc[VIDEO_C, "status"] == "error" and videos.loc[VIDEO_C, "error"] == "not a video"
    )
    assert videos.loc[VIDEO_C, "persons"] == 0 and pd.isna(videos.loc[VIDEO_C, "duration_s"])
    assert list(videos["status"]) == ["ok", "ok", "error"]


def test_times_count_overlapping_segments_once() -> None:
    assert covered_seconds([(0, 3), (1.5, 4.5), (3, 6), (10, 11)]) == 7.0
    df = synthetic_table().to_pandas()
    a = df[df["video"] == VIDEO_A].copy()
    a.loc[a["segment"] == 1, ["start_s", "end_s"]] = [1.5, 4.5]  # overlaps segment 0
    a1 = summarize(a).set_index("track_id").loc[1]
    assert a1["seconds_seen"] == 4.5 + 1.5


def _pixel(fig, ax, x: float, y: float) -> np.ndarray:
    """RGB of the rendered figure at data point (x, y) of ``ax``."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    px, py = ax.transData.transform((x, y))
    return image[image.shape[0] - round(float(py)), round(float(px))]


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def test_timeline_stacks_each_persons_probabilities_over_time() -> None:
    df = synthetic_table().to_pandas()
    fig = plot_timeline(df, VIDEO_A)
    strip, person1, person2 = fig.axes[:3]
    assert "person 1" in person1.get_ylabel() and "person 2" in person2.get_ylabel()
    # Segment 0 of person 1: happiness 0.7 at the bottom, then sadness 0.2, neutral on top.
    assert np.abs(_pixel(fig, person1, 1.5, 0.35) - _rgb(EMOTION_COLORS["happiness"])).max() < 8
    assert np.abs(_pixel(fig, person1, 1.5, 0.8) - _rgb(EMOTION_COLORS["sadness"])).max() < 8
    assert np.abs(_pixel(fig, person2, 1.5, 0.5) - _rgb(EMOTION_COLORS["sadness"])).max() < 8
    # Person 2 is absent in segment 1: white; the no-face stretch is marked in the strip.
    assert (_pixel(fig, person2, 4.5, 0.5) > 245).all()
    assert (_pixel(fig, strip, 7.5, 0.5) < 245).any()
    assert (_pixel(fig, strip, 1.5, 0.5) > 245).all()
    failed = plot_timeline(df, VIDEO_C)
    assert any("not a video" in t.get_text() for ax in failed.axes for t in ax.texts)
    with pytest.raises(ValueError, match="not in the table"):
        plot_timeline(df, "elsewhere.mp4")


def test_report_command_writes_tables_pictures_and_one_page(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(results), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out / "index.html")
    df = read_results(results)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "summary.csv"), summarize(df), check_dtype=False, atol=1e-6
    )
    videos = pd.read_csv(out / "videos.csv")
    assert videos["video"].tolist() == [VIDEO_A, VIDEO_B, VIDEO_C]
    assert videos["error"].fillna("").tolist() == ["", "", "not a video"]
    pictures = sorted((out / "timelines").glob("*.png"))
    assert len(pictures) == 3 and len({p.name for p in pictures}) == 3
    assert (out / "timelines" / "a.png").exists()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "b été &amp; &lt;co&gt;.mp4" in page and "<co>" not in page  # escaped
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 3
    assert base64.b64decode(embedded[0]) == (out / "timelines" / "a.png").read_bytes()
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_report_refuses_what_is_not_a_result_table(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["report", str(tmp_path / "other.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "missing columns video" in result.stderr and "Traceback" not in result.stderr


def _chromium() -> str:
    for name in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless Chromium is not installed (apt-get install chromium-headless-shell)")


def test_page_renders_in_headless_chromium_with_timelines(results: Path, tmp_path: Path) -> None:
    browser = _chromium()
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(results), "--out", str(out), "-q"]).exit_code == 0
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1200,2400", f"--screenshot={shot}", (out / "index.html").as_uri()]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=tmp_path)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.std() > 10  # not a blank page
    # The timelines are drawn: their class colours cover a visible area of the page.
    for emotion in ("happiness", "sadness"):
        close = np.abs(image - _rgb(EMOTION_COLORS[emotion])).max(axis=2) < 12
        assert close.sum() > 2000, emotion
