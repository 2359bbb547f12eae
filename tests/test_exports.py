"""ELAN and subtitle exports: read back with pympi and FFmpeg's own parsers."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path, PureWindowsPath

import av
import pandas as pd
import pytest
from pympi.Elan import Eaf, to_string
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.media.discover import path_text
from mmadfer_cli.reporting.eaf import media_file, media_urls
from mmadfer_cli.reporting.exports import export_eaf, export_subtitles
from mmadfer_cli.reporting.subtitles import cues
from mmadfer_cli.table import files as table_files
from tests.results_helpers import VIDEO_A, VIDEO_B, synthetic_results, synthetic_table

runner = CliRunner()


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    return synthetic_results(tmp_path, "csv")


def _export(kind: str, results: Path, out: Path, *extra: str) -> list[Path]:
    result = runner.invoke(app, ["export", kind, str(results), "--out", str(out), *extra])
    assert result.exit_code == 0, result.stderr
    assert "skipped broken.mp4: it could not be read" in result.stderr
    return [Path(line) for line in result.stdout.splitlines()]


def test_eaf_has_a_tier_per_person_with_labels_probabilities_and_media(
    results: Path, tmp_path: Path
) -> None:
    files = _export("eaf", results, tmp_path / "elan", "--media-root", str(tmp_path / "media"))
    # "<" and ">" are no file name on Windows: that name changes, and so gets a key (the first 8
    # hex digits of the SHA-256 of the video's path as given)
    key = hashlib.sha256(VIDEO_B.encode()).hexdigest()[:8]
    assert [f.name for f in files] == ["a.eaf", f"b été & _co_-{key}.eaf"]  # none for broken.mp4
    eaf = Eaf(str(files[0]))
    assert set(eaf.get_tier_names()) == {
        "person 1", "person 1 confidence", "person 1 probabilities",
        "person 2", "person 2 confidence", "person 2 probabilities", "no face",
    }  # fmt: skip
    assert sorted(eaf.get_annotation_data_for_tier("person 1")) == [
        (0, 3000, "happiness"), (3000, 6000, "happiness"), (9000, 10500, "neutral")
    ]  # fmt: skip
    assert sorted(eaf.get_annotation_data_for_tier("person 2")) == [
        (0, 3000, "sadness"), (9000, 10500, "neutral")
    ]  # fmt: skip
    confidences = sorted(
        (start, end, value) for start, end, value, _ in
        eaf.get_ref_annotation_data_for_tier("person 1 confidence")
    )  # fmt: skip
    assert confidences == [(0, 3000, "0.70"), (3000, 6000, "0.50"), (9000, 10500, "0.60")]
    assert eaf.get_parameters_for_tier("person 1 confidence")["PARENT_REF"] == "person 1"
    # Every class with its probability, most likely first: the runner-up of a close call.
    probabilities = sorted(
        (start, value) for start, _, value, _ in
        eaf.get_ref_annotation_data_for_tier("person 2 probabilities")
    )  # fmt: skip
    assert probabilities == [
        (0, "sadness 0.60, neutral 0.30, happiness 0.10"),
        (9000, "neutral 0.80, happiness 0.10, sadness 0.10"),
    ]
    assert eaf.get_parameters_for_tier("person 2 probabilities")["PARENT_REF"] == "person 2"
    assert eaf.get_annotation_data_for_tier("no face") == [(6000, 9000, "no face")]
    [media] = eaf.get_linked_files()
    assert media["MEDIA_URL"] == (tmp_path / "media" / VIDEO_A).as_uri()
    assert media["RELATIVE_MEDIA_URL"] == "../media/clips/a.mp4"
    assert media["MIME_TYPE"] == "video/mp4"
    # The labels come from a controlled vocabulary of the classes; new ids do not collide.
    assert {v[0][0][0] for v in eaf.get_cv_entries("mmadfer-emotions").values()} == {
        "happiness", "sadness", "neutral"
    }  # fmt: skip
    last = dict(eaf.get_properties())["lastUsedAnnotation"]
    assert int(last) >= max(int(a[1:]) for a in eaf.annotations)


def test_eaf_links_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    raw = os.fsdecode(b"caf\xff.mp4")
    (tmp_path / raw).write_bytes(b"")
    df = synthetic_table().to_pandas()
    df = df[df["video"] == VIDEO_A].assign(video=path_text(raw))  # the table's text form
    assert media_file(path_text(raw), tmp_path) == tmp_path / raw
    [eaf_path] = export_eaf(df, tmp_path / "elan", media_root=tmp_path).values()
    [media] = Eaf(str(eaf_path)).get_linked_files()
    assert media["MEDIA_URL"] == (tmp_path / raw).as_uri()
    assert media["MEDIA_URL"].endswith("caf%FF.mp4")
    assert media["RELATIVE_MEDIA_URL"] == "../caf%FF.mp4"
    assert media_file("C:\\xray\\a.mp4") == Path("C:\\xray\\a.mp4")  # not an escape: kept


def _parsed(path: Path) -> list[tuple[int, int, str]]:
    """Cues as FFmpeg's subtitle demuxer reads them: (start ms, end ms, text)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        assert stream.time_base == 1 / 1000 or float(stream.time_base) == 0.001
        return [
            (p.pts, p.pts + p.duration, bytes(p).decode().strip())
            for p in container.demux(stream)
            if p.pts is not None
        ]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_with_a_cue_per_segment(results: Path, tmp_path: Path, fmt: str) -> None:
    files = _export(fmt, results, tmp_path / "subs")
    assert len(files) == 2 and all(f.suffix == f".{fmt}" for f in files)
    assert _parsed(files[0]) == [
        (0, 3000, "person 1: happiness 0.70\nperson 2: sadness 0.60"),
        (3000, 6000, "person 1: happiness 0.50"),
        (6000, 9000, "(no face)"),
        (9000, 10500, "person 1: neutral 0.60\nperson 2: neutral 0.80"),
    ]
    assert [c[:2] for c in _parsed(files[1])] == [(0, 3000), (3000, 5000)]


def test_a_crowd_gets_a_cue_of_four_short_lines(tmp_path: Path) -> None:
    """Six people in one segment: three lines and "+3 more", not six lines over the picture."""
    df = synthetic_table().to_pandas()
    first = df[(df["video"] == VIDEO_A) & (df["segment"] == 0)].iloc[[0]]
    crowd = pd.concat([first.assign(track_id=t) for t in range(6)], ignore_index=True)
    [(_, _, text)] = cues(crowd, VIDEO_A)
    assert text.splitlines() == [
        "person 0: happiness 0.70", "person 1: happiness 0.70", "person 2: happiness 0.70",
        "+3 more",
    ]  # fmt: skip
    four = crowd[crowd["track_id"] < 4]
    assert len(cues(four, VIDEO_A)[0][2].splitlines()) == 4  # four fit: no "+1 more"


def test_overlapping_segments_give_cues_that_do_not_overlap(tmp_path: Path) -> None:
    df = synthetic_table().to_pandas()
    df = df[df["video"] == VIDEO_B].copy()
    df.loc[df["segment"] == 1, ["start_s", "end_s"]] = [1.5, 4.5]  # stride 1.5 s, window 3 s
    assert [c[:2] for c in cues(df, VIDEO_B)] == [(0.0, 1.5), (1.5, 4.5)]
    [path] = export_subtitles(df, tmp_path, "srt").values()
    assert [c[:2] for c in _parsed(path)] == [(0, 1500), (1500, 4500)]


def test_export_refuses_what_is_not_a_result_table(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    result = runner.invoke(app, ["export", "eaf", str(tmp_path / "x.jsonl"), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "missing column" in result.stderr


def test_eaf_media_on_another_windows_drive_is_linked_by_its_absolute_url() -> None:
    """Windows has no relative path from C: to D: (or to a network share)."""
    out = PureWindowsPath("C:/Users/ana/elan")
    assert media_urls(PureWindowsPath("C:/Users/ana/videos/a.mp4"), out) == (
        "file:///C:/Users/ana/videos/a.mp4",
        "../videos/a.mp4",
    )
    assert media_urls(PureWindowsPath("D:/videos/a b.mp4"), out) == (
        "file:///D:/videos/a%20b.mp4",
        None,
    )
    assert media_urls(PureWindowsPath("//server/share/a.mp4"), out) == (
        "file://server/share/a.mp4",
        None,
    )
    eaf = Eaf()
    eaf.add_linked_file("file:///D:/videos/a.mp4", relpath=None, mimetype="video/mp4")
    assert "RELATIVE_MEDIA_URL" not in to_string(eaf)  # no empty attribute for ELAN to follow


def test_export_says_which_file_another_program_holds(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def held(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, "Access is denied", str(dst))

    monkeypatch.setattr(table_files, "RETRY_S", 0.2)
    monkeypatch.setattr(os, "replace", held)
    result = runner.invoke(app, ["export", "srt", str(results), "--out", str(tmp_path / "subs")])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert (
        f"cannot replace {tmp_path / 'subs' / 'a.srt'}: another program may have it open" in message
    )
    assert "Excel" in message and "Traceback" not in result.output
    assert list((tmp_path / "subs").iterdir()) == []  # no temporary file left behind
