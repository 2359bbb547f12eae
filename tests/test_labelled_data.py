"""Both labelled-data formats load; bad lines are reported by number."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from mmadfer_cli.recipe import augment
from mmadfer_cli.recipe.labelled_data import (
    DataError,
    FrameFolderClip,
    official_wav_path,
    parse_label,
    read_annotation_list,
    read_labelled,
    read_video_csv,
    read_wav,
)
from tests.conftest import SAMPLE_VIDEOS
from tests.recipe_helpers import write_tone

CLASSES = ("happiness", "sadness", "neutral")


def make_frame_folder(folder: Path, count: int, size: int = 24) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (size, size), (i * 10 % 255, 0, 0)).save(folder / f"{i:05d}.png")
    return folder


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    write_tone(path, 440.0, seconds, rate, amplitude=0.3)


def test_parse_label_by_index_or_name():
    assert parse_label("2", CLASSES) == 2
    assert parse_label("Sadness", CLASSES) == 1
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        parse_label("3", CLASSES)
    with pytest.raises(ValueError, match="unknown label 'joy'"):
        parse_label("joy", CLASSES)


def test_official_wav_conventions():
    dfew = official_wav_path("/data/dfew/clip_224x224/00025")
    assert dfew == Path("/data/dfew/raw_wav/25.wav")
    mafw = official_wav_path("/data/mfaw/clips_faces/00025")
    assert mafw == Path("/data/mfaw/clips_wav/00025.wav")
    assert official_wav_path("/data/mafw/clips_faces/7") == Path("/data/mafw/clips_wav/7.wav")
    assert official_wav_path("/data/other/00025") is None


def test_annotation_list_loads_with_official_wav_names(tmp_path):
    root = tmp_path / "dfew"
    make_frame_folder(root / "clip_224x224" / "00007", 20)
    make_frame_folder(root / "clip_224x224" / "00012", 10)
    write_wav(root / "raw_wav" / "7.wav")  # no WAV for clip 12
    listing = tmp_path / "set_1_train.txt"
    listing.write_text(f"{root}/clip_224x224/00007 20 0\n{root}/clip_224x224/00012 10 sadness\n")
    clips = read_labelled(listing, CLASSES)
    assert [c.label for c in clips] == [0, 1]
    assert clips[0].wav == root / "raw_wav" / "7.wav"
    assert clips[1].wav is None  # the zero filterbank will be used
    assert all(isinstance(c, FrameFolderClip) for c in clips)


def test_annotation_list_audio_template_and_relative_folders(tmp_path):
    make_frame_folder(tmp_path / "faces" / "a1", 5)
    write_wav(tmp_path / "audio" / "a1.wav")
    listing = tmp_path / "list.txt"
    listing.write_text("faces/a1 5 2\n")
    (clip,) = read_annotation_list(
        listing, CLASSES, audio_template=str(tmp_path / "audio/{name}.wav")
    )
    assert clip.folder == tmp_path / "faces" / "a1"
    assert clip.wav == tmp_path / "audio" / "a1.wav"


def test_annotation_list_reports_every_bad_line(tmp_path):
    make_frame_folder(tmp_path / "ok", 5)
    listing = tmp_path / "list.txt"
    listing.write_text(
        "ok 5 0\n"
        "ok 5 9\n"  # label out of range
        "\n"
        "missing 5 1\n"  # no folder
        "ok x 1\n"  # bad frame count
        "ok 5 joy\n"  # unknown name
        "ok5\n"  # too few fields
    )
    with pytest.raises(DataError) as error:
        read_annotation_list(listing, CLASSES)
    message = str(error.value)
    assert "5 bad lines" in message
    for number in (2, 4, 5, 6, 7):
        assert f"line {number}:" in message
    assert "line 1:" not in message
    assert "'joy'" in message


def test_video_csv_formats_and_bad_lines(tmp_path):
    video = SAMPLE_VIDEOS / "single_speaker.mp4"
    plain = tmp_path / "plain.csv"
    plain.write_text(f"video,label\n{video},happiness\n{video},2\n")
    clips = read_labelled(plain, CLASSES)
    assert [(c.label, c.start_s, c.end_s) for c in clips] == [(0, None, None), (2, None, None)]

    spans = tmp_path / "spans.csv"
    spans.write_text(
        "video,start_s,end_s,label\n"
        f"{video},0.5,3.5,sadness\n"
        f"{video},3,2,sadness\n"  # end before start
        f"{video},1,2,anger\n"  # unknown class
        f"nothere.mp4,1,2,0\n"  # missing video
        f"{video},a,2,0\n"  # bad time
    )
    with pytest.raises(DataError) as error:
        read_video_csv(spans, CLASSES)
    message = str(error.value)
    assert "4 bad lines" in message
    for number in (3, 4, 5, 6):
        assert f"line {number}:" in message
    assert "line 2:" not in message

    bad_header = tmp_path / "header.csv"
    bad_header.write_text(f"path,emotion\n{video},0\n")
    with pytest.raises(DataError, match="line 1: header"):
        read_video_csv(bad_header, CLASSES)


def test_read_wav_scales_to_unit_range(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, seconds=0.25, rate=8000)
    waveform, rate = read_wav(path)
    assert rate == 8000
    assert waveform.shape == (1, 2000)
    assert 0.29 < float(waveform.abs().max()) <= 0.3


def test_train_frame_indices_one_per_part():
    generator = torch.Generator().manual_seed(0)
    for n in (16, 40, 97):
        indices = augment.train_frame_indices(n, generator)
        part = n // 16
        assert [i // part for i in indices] == list(range(16))
    assert augment.train_frame_indices(5, generator) == [0, 1, 2, 3, 4] + [4] * 11
    draws = {tuple(augment.train_frame_indices(64, generator)) for _ in range(5)}
    assert len(draws) > 1


def test_train_transform_shapes_ranges_and_shared_draw():
    generator = torch.Generator().manual_seed(1)
    clip = torch.randint(0, 256, (16, 3, 40, 30), dtype=torch.uint8)
    clip[:] = clip[0]  # identical frames stay identical: one draw for the whole clip
    out = augment.train_transform(clip, 32, generator)
    assert out.shape == (16, 3, 32, 32)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out[0], out[15])
    test = augment.test_transform(clip, 32)
    assert test.shape == (16, 3, 32, 32)
    again = augment.train_transform(clip, 32, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_flip_and_brightness_are_applied():
    clip = torch.rand(2, 3, 8, 8)
    flipped = {
        bool(
            torch.equal(augment.random_flip(clip, torch.Generator().manual_seed(s)), clip.flip(-1))
        )
        for s in range(20)
    }
    assert flipped == {True, False}
    bright = augment.brightness_jitter(
        torch.full((1, 3, 4, 4), 128.0), 0.5, torch.Generator().manual_seed(3)
    )
    value = float(bright[0, 0, 0, 0])
    assert 64 <= value <= 192 and value != 128


def test_brightness_truncates_and_resizing_rounds_as_pil():
    """PIL stores 8-bit images: its brightness blend truncates, its resize rounds."""
    clip = torch.arange(256, dtype=torch.float32).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    factor_draw = torch.Generator().manual_seed(5)
    factor = 0.5 + float(torch.rand((), generator=factor_draw))  # the draw brightness_jitter makes
    bright = augment.brightness_jitter(clip.clone(), 0.5, torch.Generator().manual_seed(5))
    assert torch.equal(bright, (clip * factor).floor().clamp(0, 255))
    assert not torch.equal(bright, (clip * factor).clamp(0, 255))
    out = augment.train_transform(
        torch.randint(0, 256, (16, 3, 40, 30), dtype=torch.uint8), 32, torch.Generator()
    )
    assert torch.equal(out * 255, (out * 255).round())
    test = augment.test_transform(torch.randint(0, 256, (2, 3, 40, 30), dtype=torch.uint8), 32)
    assert torch.equal(test * 255, (test * 255).round())
