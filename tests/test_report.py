"""Summaries, timelines and ``mmadfer report`` on a small fixed table whose numbers are known."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urljoin

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.reporting.html_report import write_report
from mmadfer_cli.reporting.palette import (
    EMOTION_COLORS,
    ERROR_COLOR,
    NO_FACE_COLOR,
    NOT_ON_SCREEN_COLOR,
    class_colors,
)
from mmadfer_cli.reporting.summary import covered_seconds, summarize, summarize_videos
from mmadfer_cli.reporting.time_axis import clock_text, tick_step
from mmadfer_cli.reporting.timeline import plot_timeline
from mmadfer_cli.table.read import read_results
from tests.results_helpers import (
    DFEW_CLASSES,
    VIDEO_A,
    VIDEO_B,
    VIDEO_C,
    long_table,
    synthetic_results,
    synthetic_table,
)

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
    assert videos.loc[VIDEO_A, "annotated_s"] == 10.5 and videos.loc[VIDEO_A, "no_face_s"] == 3.0
    # A: happiness 2, neutral 2, sadness 1; neutral has the higher mean probability (0.4 > 0.32).
    assert videos.loc[VIDEO_A, "dominant_emotion"] == "neutral"
    assert (
        videos.loc[VIDEO_C, "status"] == "error" and videos.loc[VIDEO_C, "error"] == "not a video"
    )
    assert videos.loc[VIDEO_C, "persons"] == 0 and pd.isna(videos.loc[VIDEO_C, "annotated_s"])
    assert list(videos["status"]) == ["ok", "ok", "error"]


def test_times_count_overlapping_segments_once() -> None:
    assert covered_seconds([(0, 3), (1.5, 4.5), (3, 6), (10, 11)]) == 7.0
    df = synthetic_table().to_pandas()
    a = df[df["video"] == VIDEO_A].copy()
    a.loc[a["segment"] == 1, ["start_s", "end_s"]] = [1.5, 4.5]  # overlaps segment 0
    a1 = summarize(a).set_index("track_id").loc[1]
    assert a1["seconds_seen"] == 4.5 + 1.5


def _image(fig) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def _region(fig, ax, x: tuple[float, float], y: tuple[float, float]) -> np.ndarray:
    """RGB pixels of the rendered figure inside data box ``x`` by ``y`` of ``ax``, as a list."""
    image = _image(fig)
    (x0, y0), (x1, y1) = ax.transData.transform([(x[0], y[0]), (x[1], y[1])])
    top, bottom = image.shape[0] - round(float(y1)), image.shape[0] - round(float(y0))
    return image[top:bottom, round(float(x0)) : round(float(x1))].reshape(-1, 3)


def _pixel(fig, ax, x: float, y: float) -> np.ndarray:
    """RGB of the rendered figure at data point (x, y) of ``ax``."""
    image = _image(fig)
    px, py = ax.transData.transform((x, y))
    return image[image.shape[0] - round(float(py)), round(float(px))]


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def _near(pixels: np.ndarray, hex_color: str, tolerance: int = 8) -> np.ndarray:
    return np.abs(pixels - _rgb(hex_color)).max(axis=-1) < tolerance


def test_timeline_stacks_each_persons_probabilities_over_time() -> None:
    df = synthetic_table().to_pandas()
    fig = plot_timeline(df, VIDEO_A)
    strip, person1, person2 = fig.axes[:3]
    assert "person 1" in person1.get_ylabel() and "person 2" in person2.get_ylabel()
    # Segment 0 of person 1: happiness 0.7 at the bottom, then sadness 0.2, neutral on top.
    assert _near(_pixel(fig, person1, 1.5, 0.35), EMOTION_COLORS["happiness"])
    assert _near(_pixel(fig, person1, 1.5, 0.8), EMOTION_COLORS["sadness"])
    assert _near(_pixel(fig, person2, 1.5, 0.5), EMOTION_COLORS["sadness"])
    # Person 2 is absent in segment 1: white; the no-face stretch is hatched in the strip.
    assert (_pixel(fig, person2, 4.5, 0.5) > 245).all()
    assert _near(_region(fig, strip, (6.5, 8.5), (0.2, 0.8)), NO_FACE_COLOR, 40).mean() > 0.1
    assert (_region(fig, strip, (0.5, 2.5), (0.2, 0.8)) > 245).all()
    failed = plot_timeline(df, VIDEO_C)
    assert any("not a video" in t.get_text() for ax in failed.axes for t in ax.texts)
    with pytest.raises(ValueError, match="not in the table"):
        plot_timeline(df, "elsewhere.mp4")


def test_class_colours_stay_apart_from_each_other_and_from_the_marks() -> None:
    colors = list(class_colors([*DFEW_CLASSES, "contempt", "anxiety", "x", "y"]).values())
    assert len(set(colors)) == len(colors)
    for i, a in enumerate(colors):
        for b in [*colors[i + 1 :], NOT_ON_SCREEN_COLOR, ERROR_COLOR]:
            assert np.abs(_rgb(a) - _rgb(b)).sum() > 60, (a, b)
    # Neutral is no pale grey that could pass for white (not on screen): at most 60 % bright.
    assert _rgb(EMOTION_COLORS["neutral"]).max() < 0.6 * 255


def test_a_two_hour_timeline_keeps_its_colours_and_reads_in_hours() -> None:
    """3 people, all neutral, 2 hours: bars a minute wide, neutral's own colour, h:mm:ss."""
    neutral = (0.02, 0.02, 0.9, 0.02, 0.02, 0.01, 0.01)
    df = long_table(1, 120, 3, probs=neutral).to_pandas()
    fig = plot_timeline(df, df["video"].iloc[0])
    for band in fig.axes[1:4]:
        # 3600 px of bars per band would be 2400 segments; a minute per bar is 120.
        assert sum(len(c.get_paths()) for c in band.collections[:1]) == 120
        pixels = _region(fig, band, (30, 7170), (0.1, 0.9))
        assert _near(pixels, EMOTION_COLORS["neutral"], 12).mean() > 0.97
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    assert "1:00:00" in labels and "2:00:00" in labels
    assert "per minute" in fig.axes[-1].get_xlabel()


def test_clock_text_and_ticks_suit_ten_seconds_to_ten_hours() -> None:
    assert [clock_text(s) for s in (0, 9.6, 75, 3599.4, 3723)] == [
        "0:00", "0:10", "1:15", "59:59", "1:02:03"
    ]  # fmt: skip
    assert clock_text(75, hours=True) == "0:01:15"
    for span in (10, 600, 7200, 36000):
        assert 4 <= span / tick_step(span) <= 10, span


def _links(page: Path) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', page.read_text(encoding="utf-8"))


def test_report_command_writes_tables_pictures_an_index_and_a_page_per_video(
    results: Path, tmp_path: Path
) -> None:
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
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "b été &amp; &lt;co&gt;.mp4" in index and "<co>" not in index  # escaped
    # Headers in words, times as m:ss: A is annotated for 10.5 s, person 1 on screen 7.5 s.
    assert "<th" in index and "seconds_seen" not in index and "share_happiness" not in index
    assert ">share of segments labelled</th>" in index and ">on screen</th>" in index
    assert "<td>0:10</td>" in index and "<td>0:08</td>" in index
    # The index shows no pictures; it links each video's page, which links back.
    assert "data:image" not in index
    pages = _links(out / "index.html")
    assert len(set(pages)) == 3
    for href in dict.fromkeys(pages):
        page = out / unquote(href)
        assert page.parent == out / "videos" and page.is_file()
        png = out / "timelines" / f"{page.stem}.png"  # the page and its picture share a name
        text = page.read_text(encoding="utf-8")
        assert "../index.html" in _links(page)
        assert all((page.parent / unquote(link)).is_file() for link in _links(page))
        [embedded] = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
        assert base64.b64decode(embedded) == png.read_bytes()
    for page in [out / "index.html", *(out / "videos").iterdir()]:
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "<script" not in text


def test_a_single_video_is_one_page_with_its_timeline(tmp_path: Path) -> None:
    """One 25-minute video: index.html alone, its picture a bar per minute, as the page says."""
    df = read_results(synthetic_results(tmp_path, table=long_table(1, 25, 1)))
    out = tmp_path / "one"
    index = write_report(df, out)
    assert not (out / "videos").exists() and _links(index) == []
    page = index.read_text(encoding="utf-8")
    assert "25:00 long, one bar per minute" in page
    [embedded] = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    # The picture keeps the video's name, space and all: "session 000.mp4" gives "session 000.png".
    assert base64.b64decode(embedded) == (out / "timelines" / "session 000.png").read_bytes()


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


def _screenshot(browser: str, url: str, shot: Path, height: int) -> np.ndarray:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size=1200,{height}", f"--screenshot={shot}", url]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=shot.parent)
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def test_index_and_video_pages_render_and_link_in_headless_chromium(
    results: Path, tmp_path: Path
) -> None:
    browser = _chromium()
    made = tmp_path / "report"
    assert runner.invoke(app, ["report", str(results), "--out", str(made), "-q"]).exit_code == 0
    out = tmp_path / "moved" / "elsewhere"  # links are relative: the folder moves as a whole
    out.parent.mkdir()
    shutil.move(made, out)
    index = (out / "index.html").as_uri()
    image = _screenshot(browser, index, tmp_path / "index.png", 900)
    assert image.std() > 10  # not a blank page
    # The browser follows the index's first link to video A's page, which shows its timeline.
    page = urljoin(index, _links(out / "index.html")[0])
    image = _screenshot(browser, page, tmp_path / "page.png", 1400)
    for emotion in ("happiness", "sadness", "neutral"):
        assert _near(image, EMOTION_COLORS[emotion], 12).sum() > 2000, emotion
