"""The streaming pipeline with fake stages injected: ordering, batching, errors, bounded memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.model.inference import model_predictor, resolve_precision
from mmadfer_cli.run.clips import FaceClip, SegmentClips
from mmadfer_cli.run.engines.local import Stages, run_pipeline
from mmadfer_cli.run.errors import PipelineError
from mmadfer_cli.run.videos import PipelineStats, VideoTask

CLASSES = ("a", "b", "c", "d", "e")


def _clip(video: int, segment: int, track: int) -> torch.Tensor:
    # The clip's pixels encode where it came from, so rows can be checked against predictions.
    clip = torch.zeros(16, 3, 4, 4, dtype=torch.int32)
    clip[0, 0, 0, :3] = torch.tensor([video, segment, track], dtype=torch.int32)
    return clip


def _expected_class(video: int, segment: int, track: int) -> int:
    return (video + segment + track) % len(CLASSES)


def _fake_predict(calls: list[list[tuple[int, int, int]]]):
    def predict(clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]) -> np.ndarray:
        assert len(clips) == len(fbanks)
        origins = [tuple(int(v) for v in c[0, 0, 0, :3]) for c in clips]
        calls.append(origins)
        time.sleep(0.01)  # slower than the fake decoding, so that batches fill up
        probs = np.full((len(clips), len(CLASSES)), 0.1, np.float32)
        for row, origin in enumerate(origins):
            probs[row, _expected_class(*origin)] = 0.6
        return probs

    return predict


def _video_plan(path: Path) -> tuple[int, int, int]:
    """Fake videos are named v<index>_<segments>_<faces>.mp4."""
    index, segments, faces = (int(x) for x in path.stem[1:].split("_"))
    return index, segments, faces


def _source(
    produced: list[int] | None = None,
    fail: dict[str, int] | None = None,
    damaged: dict[str, int] | None = None,
):
    def iter_clips(path: Path, job: object = None) -> Iterator[SimpleNamespace]:
        index, segments, faces = _video_plan(path)
        for s in range(segments):
            if fail and path.name in fail and s == fail[path.name]:
                raise ValueError(f"broken frame in {path.name}")
            if produced is not None:
                produced.append(1)
            broken = damaged is not None and damaged.get(path.name) == s
            # Faces come and go: segment s has (s % (faces + 1)) tracks, the first has none.
            n = s % (faces + 1) if faces and not broken else 0
            yield SegmentClips(
                segment=SimpleNamespace(index=s, start_s=2.0 * s, end_s=2.0 * s + 2.0),  # type: ignore[arg-type]
                error=f"the frames at {2.0 * s:.2f} s cannot be decoded" if broken else None,
                has_audio=True,
                fbank=torch.zeros(512, 128),
                faces=[
                    FaceClip(
                        track_id=t,
                        clip=_clip(index, s, t),
                        face_frames=16,
                        face_score=0.9,
                        bbox=(0.0, 0.0, 10.0, 10.0),
                        boxes=np.zeros((16, 4), np.float32),
                    )
                    for t in range(n)
                ],
            )

    return lambda: iter_clips


def _tasks(*names: str) -> list[VideoTask]:
    return [VideoTask(i, name, Path(name)) for i, name in enumerate(names)]


def _stages(calls: list, **kwargs: object) -> Stages:
    return Stages(
        open_source=_source(**kwargs),  # type: ignore[arg-type]
        video_id=lambda p: f"id-{p.stem}",
        predict=_fake_predict(calls),
    )


def _by_input_order(results: Iterator) -> list:
    return sorted(results, key=lambda r: r.task.index)


def test_every_video_once_with_predictions_routed_to_their_track() -> None:
    calls: list = []
    tasks = _tasks("v0_7_3.mp4", "v1_1_0.mp4", "v2_4_2.mp4", "v3_9_1.mp4")
    results = list(run_pipeline(tasks, _stages(calls), CLASSES, batch_size=4, workers=3))
    assert sorted(r.task.video for r in results) == [t.video for t in tasks]
    for result in results:
        index, segments, faces = _video_plan(result.task.path)
        assert result.error is None and result.video_id == f"id-{result.task.path.stem}"
        keys = [(r["segment"], r.get("track_id")) for r in result.rows]
        expected = [
            (s, t) if n else (s, None)
            for s in range(segments)
            for n in [s % (faces + 1) if faces else 0]
            for t in (range(n) if n else [None])
        ]
        assert keys == expected
        for row in result.rows:
            if row["status"] == "ok":
                want = CLASSES[_expected_class(index, row["segment"], row["track_id"])]
                assert row["label"] == want and row["confidence"] == pytest.approx(0.6)
            else:
                assert row["status"] == "no_face" and "label" not in row
        assert result.segments == segments
    assert max(len(c) for c in calls) <= 4
    # Clips of different videos share batches.
    assert any(len({origin[0] for origin in call}) > 1 for call in calls)


def test_a_failing_video_is_one_error_row_and_the_run_goes_on() -> None:
    calls: list = []
    stages = _stages(calls, fail={"v1_5_1.mp4": 3})
    tasks = _tasks("v0_3_1.mp4", "v1_5_1.mp4", "v2_3_1.mp4")
    results = _by_input_order(run_pipeline(tasks, stages, CLASSES, batch_size=2, workers=2))
    reason = "internal error in media stages: ValueError: broken frame in v1_5_1.mp4"
    assert [r.error for r in results] == [None, reason, None]
    assert isinstance(results[1].exception, ValueError)  # kept for --debug
    (row,) = results[1].rows
    assert row["status"] == "error" and row["video_id"] == "id-v1_5_1"
    assert len(results[2].rows) == 3


def test_a_damaged_segment_is_an_error_row_among_the_normal_ones() -> None:
    stages = _stages([], damaged={"v0_4_1.mp4": 2})
    (result,) = run_pipeline(_tasks("v0_4_1.mp4"), stages, CLASSES, batch_size=2)
    assert result.error is None and result.damaged == [
        (4.0, 6.0, "the frames at 4.00 s cannot be decoded")
    ]
    assert [(r["segment"], r["status"]) for r in result.rows] == [
        (0, "no_face"), (1, "ok"), (2, "error"), (3, "ok")
    ]  # fmt: skip
    assert result.rows[2]["error"] == "the frames at 4.00 s cannot be decoded"
    assert result.rows[2]["start_s"] == 4.0 and result.rows[2]["video_id"] == "id-v0_4_1"


def test_a_long_video_does_not_hold_back_finished_ones() -> None:
    release = threading.Event()
    plain = _source()

    def source():
        iter_clips = plain()

        def gated(path: Path, job: object = None) -> Iterator[SimpleNamespace]:
            for i, clips in enumerate(iter_clips(path, job)):
                if path.name.startswith("v0_") and i == 1:
                    release.wait(timeout=20)  # the long video stalls until the test says so
                yield clips

        return gated

    stages = Stages(open_source=source, video_id=str, predict=_fake_predict([]))
    run = run_pipeline(_tasks("v0_3_1.mp4", "v1_2_1.mp4"), stages, CLASSES, workers=2)
    first = next(run)  # must come while video 0 is still stalled
    assert first.task.video == "v1_2_1.mp4" and first.error is None
    release.set()
    assert [r.task.video for r in run] == ["v0_3_1.mp4"]


def test_video_id_failure_gives_error_row_without_id() -> None:
    def no_file(path: Path) -> str:
        raise FileNotFoundError(2, "No such file or directory", str(path))

    stages = Stages(open_source=_source(), video_id=no_file, predict=_fake_predict([]))
    (result,) = run_pipeline(_tasks("v0_2_1.mp4"), stages, CLASSES)
    assert result.rows[0]["video_id"] is None
    assert "No such file" in (result.error or "")


def test_memory_is_bounded_by_queue_and_batch_not_video_length() -> None:
    # Face clips (the pixels) held anywhere: produced and not yet through the model.
    held, peak, lock = [0], [0], threading.Lock()
    inner = _source()

    def open_source():
        iter_clips = inner()

        def counted(path: Path, job: object = None) -> Iterator[SegmentClips]:
            for clips in iter_clips(path, job):
                with lock:
                    held[0] += len(clips.faces)
                    peak[0] = max(peak[0], held[0])
                yield clips

        return counted

    def slow_predict(clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]) -> np.ndarray:
        time.sleep(0.002)  # a model slower than decoding: producers must wait, not pile up
        with lock:
            held[0] -= len(clips)
        return np.full((len(clips), len(CLASSES)), 0.2, np.float32)

    stages = Stages(open_source=open_source, video_id=str, predict=slow_predict)
    tasks = _tasks("v0_300_1.mp4", "v1_300_1.mp4")
    stats = PipelineStats()
    results = list(
        run_pipeline(tasks, stages, CLASSES, batch_size=4, workers=2, queue_size=3, stats=stats)
    )
    assert sum(len(r.rows) for r in results) == 600
    # At most: the clips waiting (queue_size), one batch, and one segment held by each worker.
    assert peak[0] <= 3 + 4 + 2
    assert stats.segments == 600 and stats.clips == 300 and stats.videos == 2


def test_closing_the_run_early_stops_the_workers() -> None:
    produced: list[int] = []
    stages = Stages(open_source=_source(produced), video_id=str, predict=_fake_predict([]))
    before = set(threading.enumerate())
    run = run_pipeline(_tasks("v0_2_1.mp4", "v1_5000_1.mp4"), stages, CLASSES, workers=2)
    first = next(run)
    assert first.task.video == "v0_2_1.mp4"
    run.close()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert len(produced) < 5000


def test_a_worker_that_cannot_start_stops_the_run() -> None:
    def broken() -> None:
        raise RuntimeError("no detector")

    stages = Stages(open_source=broken, video_id=str, predict=_fake_predict([]))  # type: ignore[arg-type]
    with pytest.raises(
        PipelineError, match="internal error in worker start-up: RuntimeError: no detector"
    ):
        list(run_pipeline(_tasks("v0_2_1.mp4"), stages, CLASSES))


def test_a_failure_in_making_rows_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rows are made in a thread of each worker's own: an error there must end the run with
    # its reason, not leave it waiting for chunks that never come.
    def broken(*args: object) -> list:
        raise RuntimeError("no rows")

    monkeypatch.setattr("mmadfer_cli.run.chunk.segment_rows", broken)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            list(run_pipeline(_tasks("v0_2_1.mp4", "v1_2_1.mp4"), _stages([]), CLASSES))
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and len(raised) == 1
    assert isinstance(raised[0], PipelineError) and "no rows" in str(raised[0])


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)  # auto: a Mac's GPU
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        resolve_device("tpu")


def _tiny_model_and_inputs(n: int) -> tuple[torch.nn.Module, list, list]:
    from mmadfer_cli.model import MMADFERConfig, build_model

    torch.manual_seed(0)
    model = build_model(MMADFERConfig.tiny()).eval()
    clips = [torch.randint(0, 256, (16, 3, 224, 224), dtype=torch.uint8) for _ in range(n)]
    return model, clips, [torch.randn(512, 128) for _ in range(n)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_predictor_matches_cpu_labels() -> None:
    model, clips, fbanks = _tiny_model_and_inputs(3)
    cpu = model_predictor(model, torch.device("cpu"))(clips, fbanks)
    cuda = torch.device("cuda")
    gpu = model_predictor(model.to(cuda), cuda, resolve_precision("auto", cuda))(clips, fbanks)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    np.testing.assert_allclose(gpu.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(gpu, cpu, atol=2e-2)


def test_cpu_predictor_gives_probabilities_of_the_model() -> None:
    model, clips, fbanks = _tiny_model_and_inputs(2)
    probs = model_predictor(model, torch.device("cpu"))(clips, fbanks)
    with torch.inference_mode():
        images = torch.stack(clips).float() / 255.0
        logits = model(images, torch.stack(fbanks).unsqueeze(1))
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).numpy(), atol=1e-6)


def test_padded_predictor_runs_full_batches_and_drops_the_padding() -> None:
    model, clips, fbanks = _tiny_model_and_inputs(3)
    batches: list[int] = []
    model.register_forward_pre_hook(lambda _, args: batches.append(len(args[0])))
    plain = model_predictor(model, torch.device("cpu"))(clips, fbanks)
    padded = model_predictor(model, torch.device("cpu"), pad_to=5)(clips, fbanks)
    assert batches == [3, 5] and padded.shape == plain.shape == (3, 7)
    np.testing.assert_allclose(padded, plain, atol=1e-6)


def test_taking_turns_a_batch_fills_with_the_next_videos_clips() -> None:
    # Short videos of one clip each: a worker that waited for its video's rows before opening
    # the next one left the model a batch of 1 clip per video (a quarter slower per clip).
    calls: list = []
    tasks = _tasks(*(f"v{i}_2_1.mp4" for i in range(6)))  # segment 1 of each has one face
    results = list(run_pipeline(tasks, _stages(calls), CLASSES, batch_size=4, workers=1,
                                threads_per_worker=1))  # fmt: skip
    assert [len(call) for call in calls] == [4, 2]
    assert all(r.error is None and len(r.rows) == 2 for r in results) and len(results) == 6


def test_workers_use_their_own_thread_count_and_the_model_keeps_all() -> None:
    # On the CPU each worker runs its detector on its share of the cores, while the model's
    # thread (the caller's) keeps every core for the times the workers wait on it.
    before = torch.get_num_threads()
    seen: list[int] = []
    inner = _source()

    def open_source():
        seen.append(torch.get_num_threads())
        return inner()

    stages = Stages(open_source, lambda p: p.stem, _fake_predict([]))
    tasks = _tasks("v0_3_1.mp4", "v1_2_1.mp4")
    torch.set_num_threads(2)
    try:
        results = list(run_pipeline(tasks, stages, CLASSES, workers=2, threads_per_worker=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1] and all(r.error is None for r in results)
