"""Discovery: which files a run picks up from the paths the user gives, and in what order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmadfer_cli.discover import PathNotFoundError, discover_videos, is_video_name


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in [
        "b.mp4", "a.MOV", "notes.txt", "clip.mxf", ".hidden.mp4",
        ".cache/c.mp4", "sub/d.webm", "sub/deeper/e.3gp", "sub/f.TS", "sub/readme.md",
    ]:  # fmt: skip
        touch(tmp_path / rel)
    return tmp_path


def rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_recursive_walk_picks_videos_by_extension_sorted(tree: Path) -> None:
    found = discover_videos([tree])
    assert rel(found, tree) == ["a.MOV", "b.mp4", "sub/d.webm", "sub/f.TS", "sub/deeper/e.3gp"]


def test_no_recursive_stays_in_the_folder(tree: Path) -> None:
    assert rel(discover_videos([tree], recursive=False), tree) == ["a.MOV", "b.mp4"]


def test_glob_adds_other_names(tree: Path) -> None:
    found = rel(discover_videos([tree], globs=["*.MXF"]), tree)
    assert "clip.mxf" in found and "notes.txt" not in found


def test_explicit_files_are_kept_in_argument_order_without_duplicates(tree: Path) -> None:
    found = discover_videos([tree / "sub" / "d.webm", tree / "notes.txt", tree / "sub"])
    assert rel(found, tree) == ["sub/d.webm", "notes.txt", "sub/f.TS", "sub/deeper/e.3gp"]


def test_same_file_through_a_symlink_is_listed_once(tree: Path) -> None:
    os.symlink(tree / "b.mp4", tree / "sub" / "link.mp4")
    found = rel(discover_videos([tree]), tree)
    assert found.count("b.mp4") == 1 and "sub/link.mp4" not in found


def test_symlink_loop_terminates(tree: Path) -> None:
    os.symlink(tree, tree / "sub" / "loop")
    found = rel(discover_videos([tree]), tree)
    assert sorted(found) == sorted(set(found))
    assert "sub/d.webm" in found


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PathNotFoundError, match="nope"):
        discover_videos([tmp_path, missing])


def test_is_video_name_is_case_insensitive() -> None:
    assert is_video_name("X.MKV") and is_video_name("y.mpeg") and not is_video_name("z.wav")
