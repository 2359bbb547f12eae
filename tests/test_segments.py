"""Segments: the timeline cut and the official 16-frame sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmadfer_cli.media.segments import official_frame_indices, plan_segments


def test_sampling_matches_the_official_loader(reference_dir) -> None:
    expected = json.loads((reference_dir / "sampling.json").read_text())
    assert len(expected) >= 5
    for n, indices in expected.items():
        assert official_frame_indices(int(n)) == indices, n


def cfr(frames: int, fps: float) -> np.ndarray:
    return np.arange(frames) / fps


def test_contiguous_windows_with_a_kept_partial_last_window() -> None:
    segments = plan_segments(cfr(200, 25), 8.0)
    assert [(s.start_s, s.end_s) for s in segments] == [(0, 3), (3, 6), (6, 8)]
    assert segments[0].frame_indices == tuple(official_frame_indices(75))
    assert segments[1].frame_indices == tuple(75 + i for i in official_frame_indices(75))
    assert segments[2].frame_indices == tuple(150 + i for i in official_frame_indices(50))
    assert all(len(s.frame_indices) == 16 for s in segments)
    assert [(s.audio_start_s, s.audio_end_s) for s in segments] == [(0, 3), (3, 6), (6, 8)]
    assert [s.index for s in segments] == [0, 1, 2]


def test_short_last_window_is_dropped() -> None:
    segments = plan_segments(cfr(155, 25), 6.2)
    assert [(s.start_s, s.end_s) for s in segments] == [(0, 3), (3, 6)]


def test_video_shorter_than_min_segment_gives_one_segment() -> None:
    (only,) = plan_segments(cfr(5, 10), 0.5)
    assert (only.start_s, only.end_s) == (0, 0.5)
    assert only.frame_indices == (0, 1, 2, 3, 4) + (4,) * 11


def test_overlapping_windows_stop_at_the_end() -> None:
    segments = plan_segments(cfr(200, 25), 8.0, window_s=3.0, stride_s=1.0)
    assert [s.start_s for s in segments] == [0, 1, 2, 3, 4, 5]
    assert segments[-1].end_s == 8.0


def test_variable_frame_rate_is_sampled_by_time() -> None:
    # 1 s at 10 fps, then 2 s at 40 fps: the first 3 s window holds all 90 frames,
    # but a 1.5 s window over the slow part holds only the 10 slow frames and 20 fast ones.
    times = np.concatenate([np.arange(10) / 10, 1 + np.arange(80) / 40])
    first = plan_segments(times, 3.0, window_s=1.5)[0]
    assert first.frame_indices == tuple(official_frame_indices(30))
    assert plan_segments(times, 3.0)[0].frame_indices == tuple(official_frame_indices(90))


def test_window_without_a_frame_start_uses_the_frame_on_screen() -> None:
    times = np.array([0.0, 0.5, 4.5])  # a still frame from 0.5 s to 4.5 s
    segments = plan_segments(times, 5.0, window_s=1.0)
    assert segments[2].frame_indices == (1,) * 16


@pytest.mark.parametrize("bad", [{"window_s": 0}, {"stride_s": -1}, {"min_segment_s": -1}])
def test_bad_settings_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        plan_segments(cfr(10, 10), 1.0, **bad)
