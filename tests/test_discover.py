"""Discovery: which files a run picks up from the paths the user gives, and in what order."""

from __future__ import annotations

import codecs
import os
import socket
import sys
from pathlib import Path

import pytest

from mmadfer_cli.media.discover import (
    PathNotFoundError,
    discover_videos,
    is_video_name,
    not_regular,
    path_text,
)

POSIX_ONLY = pytest.mark.skipif(
    sys.platform == "win32", reason="named pipes and sockets in folders"
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in [
        "b.mp4", "a.MOV", "notes.txt", "clip.r3d", ".hidden.mp4",
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
    found = rel(discover_videos([tree], globs=["*.R3D"]), tree)
    assert "clip.r3d" in found and "notes.txt" not in found


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


@pytest.mark.parametrize(
    "raw", [b"bad\xff\xfename.mp4", b"dir\\with\\backslash\xe9.mp4", b"lit\\xffname\x80.mp4"]
)
def test_path_text_of_a_non_utf8_name_is_valid_escaped_and_lossless(raw: bytes) -> None:
    text = path_text(os.fsdecode(raw))
    text.encode("utf-8")  # valid text: Arrow, CSV and JSON writers accept it
    assert codecs.escape_decode(text.encode())[0] == raw


def test_path_text_keeps_valid_names(tmp_path: Path) -> None:
    for name in ["plain.mp4", "café/été.mp4", "back\\slash.mp4"]:
        assert path_text(name) == name
    assert path_text(os.fsdecode(b"bad\xff\xfename.mp4")) == "bad\\xff\\xfename.mp4"


def test_non_utf8_names_are_discovered(tmp_path: Path) -> None:
    touch(Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff\xfename.mp4")))
    (found,) = discover_videos([tmp_path])
    assert os.fsencode(found).endswith(b"bad\xff\xfename.mp4")


def test_camcorder_phone_and_disc_extensions_are_videos(tmp_path: Path) -> None:
    names = ["a.MTS", "b.m2ts", "c.MOD", "d.TOD", "e.3g2", "f.mxf", "g.VOB", "h.ogv", "i.mp4"]
    for name in names:
        touch(tmp_path / name)
    assert rel(discover_videos([tmp_path]), tmp_path) == names


@POSIX_ONLY
def test_a_folder_scan_reports_what_is_not_a_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "notes.txt")  # an ordinary file that is not a video: left out silently
    os.mkfifo(tmp_path / "b.mp4")
    (tmp_path / "c.mp4").symlink_to(tmp_path / "gone.mp4")
    server = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(tmp_path)  # a socket's path is short (104 bytes on macOS)
    server.bind("d.sock")
    skipped: list[tuple[Path, str]] = []
    try:
        assert rel(discover_videos([tmp_path], skipped=skipped), tmp_path) == ["a.mp4"]
    finally:
        server.close()
    assert [(p.name, kind) for p, kind in skipped] == [
        ("b.mp4", "named pipe"),
        ("c.mp4", "broken link"),
        ("d.sock", "socket"),
    ]


@POSIX_ONLY
def test_not_regular_names_what_a_path_is_without_opening_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mp4")  # opening it would wait for a writer
    assert not_regular(tmp_path / "pipe.mp4") == "named pipe"
    assert not_regular(tmp_path) == "folder"
    assert not_regular("/dev/null") == "character device"
    touch(tmp_path / "v.mp4")
    assert not_regular(tmp_path / "v.mp4") is None
