"""Video CSV spans: test-time frames for evaluation, the official train-time draw for training."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mmadfer_cli.faces import create_detector
from mmadfer_cli.recipe.dataset import LabelledClipDataset
from mmadfer_cli.recipe.labelled_data import VideoSpanClip
from mmadfer_cli.recipe.video_spans import extract_span_clips
from mmadfer_cli.run.clips import ClipSettings, iter_video_clips
from tests.conftest import SAMPLE_VIDEOS

VIDEO = SAMPLE_VIDEOS / "single_speaker.mp4"  # 25 fps: 0-3 s is frames 0..74
SETTINGS = ClipSettings()


@pytest.fixture(scope="module")
def spans():
    rows = [VideoSpanClip(2, VIDEO, 0.0, 3.0, 0), VideoSpanClip(3, VIDEO, 3.5, 6.5, 1)]
    return rows, extract_span_clips(rows, SETTINGS)


class Recording:
    """A span loader that also records which frames each training item drew."""

    def __init__(self, spans) -> None:
        self.spans = spans
        self.drawn: list[list[int]] = []

    def __call__(self, clip, generator=None):
        if generator is not None:
            copy = torch.Generator()
            copy.set_state(generator.get_state())
            self.drawn.append(self.spans.frame_indices(clip, copy))
        return self.spans(clip, generator)


def test_span_boxes_cover_every_frame_and_test_frames_are_annotates(spans):
    rows, loaded = spans
    span = loaded[2]
    assert span.frames.tolist() == list(range(75))
    assert span.boxes.shape == (75, 4)
    segment = next(iter_video_clips(VIDEO, SETTINGS, create_detector("mtcnn")))
    face = segment.faces[0]
    assert span.test_frames == segment.segment.frame_indices
    assert np.array_equal(span.boxes[list(span.test_frames)], face.boxes)
    clip, fbank = loaded(rows[0])
    assert torch.equal(clip, face.clip)  # the test-time clip is the one annotate would see
    assert torch.equal(fbank, segment.fbank)


def test_training_draws_new_frames_from_each_part_every_epoch(spans):
    rows, loaded = spans
    recording = Recording(loaded)
    data = LabelledClipDataset(rows, train=True, seed=1, span_loader=recording)
    for epoch in range(3):
        data.set_epoch(epoch)
        images, label, _, _ = data[1]
        assert images.shape == (16, 3, 224, 224) and label == 1
    span = loaded[3]
    part = len(span.frames) // 16
    for drawn in recording.drawn:
        assert [(i - int(span.frames[0])) // part for i in drawn] == list(range(16))
    assert len({tuple(d) for d in recording.drawn}) == 3
    assert all(d != list(span.test_frames) for d in recording.drawn)
    data.set_epoch(1)
    again = data[1][0]  # an epoch's draw is repeatable (resume gives the same epoch)
    data.set_epoch(1)
    assert torch.equal(data[1][0], again)


def test_validation_uses_the_test_time_frames_deterministically(spans):
    rows, loaded = spans
    data = LabelledClipDataset(rows, train=False, span_loader=loaded)
    first = data[0][0]
    data.set_epoch(4)
    assert torch.equal(data[0][0], first)
    assert torch.equal(first, loaded(rows[0])[0].float() / 255)
    copied = pickle.loads(pickle.dumps(loaded))  # as a spawned loading process receives it
    assert torch.equal(copied(rows[0])[0], loaded(rows[0])[0])


def test_span_faces_are_cached_for_a_resumed_run(tmp_path, monkeypatch) -> None:
    rows = [VideoSpanClip(2, VIDEO, 0.0, 3.0, 0)]
    first = extract_span_clips(rows, SETTINGS, cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_face_stage(*args, **kwargs):
        raise AssertionError("the face stage ran again")

    monkeypatch.setattr("mmadfer_cli.recipe.video_spans.iter_video_clips", no_face_stage)
    again = extract_span_clips(rows, SETTINGS, cache=tmp_path)
    a, b = first[2], again[2]
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
    assert a.test_frames == b.test_frames and torch.equal(a.fbank, b.fbank)
    # Other settings are another cache entry: the face stage must run for them.
    with pytest.raises(AssertionError, match="ran again"):
        extract_span_clips(rows, ClipSettings(min_face_frames=4), cache=tmp_path)
