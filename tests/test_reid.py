"""Re-identification: tracks split where the person changes, tracks joined into people.

The videos are made here from package photos (scikit-image's astronaut, the six
people of insightface's group photo), cut shot by shot: two people framed at the
same place in turn (the overlap tracker joins them across the cut), the same
person framed differently after a cut, a person leaving the frame and coming back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from mmadfer_cli.api import annotate
from mmadfer_cli.cli.app import app
from mmadfer_cli.faces.embedding import FaceEmbeddings
from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint
from mmadfer_cli.run.reid import EMBEDDINGS_KEY, People, ReidSettings, cluster, pick_slots
from mmadfer_cli.table.sinks import read_metadata
from tests.reid_helpers import ASTRONAUT_FACE, GROUP_FACES, Shot, astronaut, group, write_video

FAST = {"detector": "dlib", "window": 1.0, "workers": 1, "batch_size": 8}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(build_model(MMADFERConfig.tiny()), path)
    return path


@pytest.fixture(scope="module")
def reverse_shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A, then B at the same place, A framed wider, B again, nobody for 3 s, A again: 1 s shots."""
    a, b = astronaut(), group()
    shots: list[Shot] = [
        (a, ASTRONAUT_FACE, 1, 2.0, 0.0),
        (b, GROUP_FACES[2], 1, 2.0, 0.0),
        (a, ASTRONAUT_FACE, 1, 2.5, 0.1),
        (b, GROUP_FACES[2], 1, 1.8, -0.05),
        (None, (), 3, 1, 0),
        (a, ASTRONAUT_FACE, 1, 2.0, 0.0),
    ]
    return write_video(tmp_path_factory.mktemp("videos") / "reverse_shot.mp4", shots)


def _person(df: pd.DataFrame, second: int) -> tuple[int, int]:
    """(track_id, person_id) of the one face seen in the segment starting at ``second``."""
    rows = df[(df.start_s.round() == second) & (df.status == "ok")]
    assert len(rows) == 1, rows
    return int(rows.track_id.iloc[0]), int(rows.person_id.iloc[0])


def test_cuts_split_tracks_and_rejoin_people(reverse_shot: Path, checkpoint: Path) -> None:
    df = annotate(reverse_shot, checkpoint=checkpoint, **FAST)
    a1, b1, a2, b2, a3 = (_person(df, s) for s in (0, 1, 2, 3, 7))
    assert (df.status == "no_face").sum() == 3  # the empty shot
    # A and B share a screen position, so one overlap track ran across each cut: it was split.
    assert len({a1[0], b1[0], a2[0], b2[0], a3[0]}) == 5
    # A's three shots (after a cut, reframed, after leaving for 3 s) are one person; B another.
    assert a1[1] == a2[1] == a3[1]
    assert b1[1] == b2[1] != a1[1]
    settings = df.attrs["mmadfer"]["settings"]["reid"]
    assert settings["model"] == "dlib_face_recognition_resnet_model_v1"
    assert len(settings["sha256"]) == 64 and settings["threshold"] == 0.5


def test_six_people_shown_in_turn_keep_six_ids(tmp_path: Path, checkpoint: Path) -> None:
    """The group photo's faces one after another at the same place, twice (framed differently)."""
    photo = group()
    shots: list[Shot] = [(photo, face, 1, 2.0, 0.0) for face in GROUP_FACES]
    shots += [(photo, face, 1, 2.6, 0.1) for face in reversed(GROUP_FACES)]
    df = annotate(write_video(tmp_path / "lineup.mp4", shots), checkpoint=checkpoint, **FAST)
    people = [_person(df, s)[1] for s in range(12)]
    assert len(set(people[:6])) == 6
    assert people[6:] == people[:6][::-1]


def test_no_reid_leaves_person_id_empty(
    reverse_shot: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.parquet"
    args = ["annotate", str(reverse_shot), "--checkpoint", str(checkpoint), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--no-reid", "--detector", "dlib", "--window", "1"])
    assert result.exit_code == 0, result.stderr
    df = pq.read_table(out).to_pandas()
    assert df.person_id.isna().all()
    # Without re-identification the tracker's single track runs across the A/B cuts.
    assert df[df.status == "ok"].track_id.nunique() < 5
    assert read_metadata(out)["settings"]["reid"] is None


# ---- the clustering on plain data ---------------------------------------------------------


def _rows(track: int, segments: range, vector: np.ndarray, video: str = "v") -> list[dict]:
    """ok rows of one track, one per 1 s segment, each with three observations of ``vector``."""
    found = FaceEmbeddings((2, 7, 12), np.repeat(vector[None], 3, axis=0).astype(np.float32))
    return [
        {
            "video": video,
            "status": "ok",
            "track_id": track,
            "segment": s,
            "start_s": float(s),
            "end_s": s + 1.0,
            EMBEDDINGS_KEY: found,
        }
        for s in segments
    ]


def _people(rows: list[dict]) -> list[tuple[int, int]]:
    return [(r["track_id"], r["person_id"]) for r in sorted(rows, key=lambda r: r["segment"])]


def test_tracks_seen_together_are_never_one_person() -> None:
    same = np.zeros(128)
    rows = _rows(0, range(3), same) + _rows(1, range(2, 5), same) + _rows(2, range(6, 8), same)
    People().assign(rows)
    ids = {r["track_id"]: r["person_id"] for r in rows}
    assert ids[0] != ids[1]  # identical faces, but on screen together in segment 2
    assert ids[2] in (ids[0], ids[1])
    assert all(EMBEDDINGS_KEY not in r for r in rows)


def test_a_track_is_split_where_the_face_changes_and_one_odd_frame_does_not_split() -> None:
    a, b = np.zeros(128), np.full(128, 0.1)  # 1.13 apart
    rows = _rows(0, range(3), a) + _rows(0, range(3, 5), b) + _rows(1, range(6, 8), a)
    rows[1][EMBEDDINGS_KEY] = FaceEmbeddings((2, 7, 12), np.stack([a, b, a]).astype(np.float32))
    People().assign(rows)
    assert _people(rows) == [(0, 0)] * 3 + [(2, 1)] * 2 + [(1, 0)] * 2


def test_a_cut_inside_a_segment_counts_it_for_the_face_seen_longer() -> None:
    a, b = np.zeros(128), np.full(128, 0.1)
    rows = _rows(0, range(2), a) + _rows(0, range(2, 4), b)
    rows[2][EMBEDDINGS_KEY] = FaceEmbeddings((2, 7, 12), np.stack([a, a, b]).astype(np.float32))
    People().assign(rows)
    assert [p for _, p in _people(rows)] == [0, 0, 0, 1]


def test_people_first_seen_together_are_numbered_by_their_lowest_track_id() -> None:
    a, c, d = np.zeros(128), np.full(128, 0.1), np.full(128, -0.1)
    # Track 2 is a shot/reverse-shot (c, a, c, ... from segment 2), track 3 (d) beside it. The
    # clusters' labels, {0, 2, 9}, iterate as 0, 9, 2: set order would put track 3 first.
    shots = [r for s in range(2, 9) for r in _rows(2, range(s, s + 1), (c, a)[s % 2])]
    rows = _rows(0, range(1), a) + _rows(1, range(1, 2), a) + shots + _rows(3, range(2, 9), d)
    People().assign(rows)
    ids = {r["track_id"]: r["person_id"] for r in rows}
    assert ids[0] == ids[1] == 0 and ids[2] == 1 and ids[3] == 2


def test_run_scope_matches_people_across_videos() -> None:
    a, b = np.zeros(128), np.full(128, 0.1)
    people = People(ReidSettings(scope="run"))
    first = people.assign(_rows(0, range(2), a, "v1") + _rows(1, range(3, 5), b, "v1"))
    second = people.assign(_rows(0, range(2), b, "v2") + _rows(1, range(2), a + 0.01, "v2"))
    ids = {(r["video"], r["track_id"]): r["person_id"] for r in first + second}
    assert ids[("v2", 0)] == ids[("v1", 1)] and ids[("v2", 1)] == ids[("v1", 0)]
    assert ids[("v1", 0)] != ids[("v1", 1)]
    video = People().assign(_rows(0, range(2), b, "v2") + _rows(1, range(2), a, "v2"))
    assert {r["person_id"] for r in video} == {0, 1}


def test_cluster_stops_at_the_threshold() -> None:
    means = np.array([[0.0], [0.5], [1.2], [5.0]])
    apart = np.zeros((4, 4), bool)
    labels = cluster(means, np.ones(4), apart, threshold=0.6)
    assert labels[0] == labels[1] != labels[2] and len(set(labels.tolist())) == 3


def test_pick_slots_takes_the_best_seen_frame_of_each_third() -> None:
    scores = np.zeros(16, np.float32)
    scores[[1, 3, 6, 9, 14]] = [0.9, 0.95, 0.7, 0.8, 0.6]
    assert pick_slots(scores, 3) == (3, 9, 14)
    assert pick_slots(np.zeros(16, np.float32), 2) == (0, 8)
