"""On the CPU the model and the media stages take turns at the cores (run/core_turns.py)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mmadfer_cli.run.chunk import ChunkJob
from mmadfer_cli.run.core_turns import CoreTurns
from mmadfer_cli.run.engines.local import default_workers, worker_threads


def test_the_model_never_runs_beside_media_stages_which_run_together() -> None:
    turns = CoreTurns()
    lock = threading.Lock()
    active = {"model": 0, "media": 0}
    seen = {"clash": 0, "media_together": 0, "model_runs": 0}
    stop = threading.Event()

    def enter(kind: str) -> None:
        with lock:
            active[kind] += 1
            if active["model"] and active["media"]:
                seen["clash"] += 1
            seen["media_together"] = max(seen["media_together"], active["media"])
            seen["model_runs"] += kind == "model"

    def leave(kind: str) -> None:
        with lock:
            active[kind] -= 1

    def media() -> None:
        while not stop.is_set():
            with turns.media():
                enter("media")
                time.sleep(0.002)
                leave("media")

    def model() -> None:
        for _ in range(20):
            with turns.model():
                enter("model")
                time.sleep(0.002)
                leave("model")
            time.sleep(0.001)

    workers = [threading.Thread(target=media) for _ in range(3)]
    for w in workers:
        w.start()
    model()
    stop.set()
    for w in workers:
        w.join()
    assert seen["clash"] == 0
    assert seen["model_runs"] == 20  # busy media stages did not keep the model out
    assert seen["media_together"] >= 2


def test_a_waiting_model_goes_before_media_stages_not_yet_started() -> None:
    turns = CoreTurns()
    order: list[str] = []
    first_in, release_first = threading.Event(), threading.Event()

    def first_media() -> None:
        with turns.media():
            first_in.set()
            release_first.wait(5)
            order.append("media 1")

    def model() -> None:
        with turns.model():
            order.append("model")

    def second_media() -> None:
        with turns.media():
            order.append("media 2")

    a = threading.Thread(target=first_media)
    a.start()
    assert first_in.wait(5)
    b = threading.Thread(target=model)
    b.start()
    while not turns._model_waiting:  # the model asked for its turn
        time.sleep(0.001)
    c = threading.Thread(target=second_media)
    c.start()
    time.sleep(0.05)
    assert order == []  # the model waits for the running stage; the new one waits for the model
    release_first.set()
    for t in (a, b, c):
        t.join(5)
    assert order == ["media 1", "model", "media 2"]
    assert turns.media_wait_s > 0.04


def test_a_source_makes_each_segment_in_a_media_turn_and_is_closed() -> None:
    turns = CoreTurns()
    closed = threading.Event()
    in_turn: list[bool] = []

    def source(path: Path, job: ChunkJob) -> Iterator[int]:
        try:
            for k in range(5):
                in_turn.append(turns._media == 1)
                yield k
        finally:
            closed.set()

    segments = turns.source(source)(Path("v.mp4"), ChunkJob(0, 1))
    assert [next(segments), next(segments)] == [0, 1]
    assert turns._media == 0  # not held while the caller hands a segment on
    segments.close()
    assert closed.is_set() and in_turn == [True, True]


@pytest.mark.parametrize(
    ("cores", "cpu", "threads", "cuda", "mps"),
    [(1, 1, 1, 1, 1), (2, 1, 2, 2, 2), (8, 4, 2, 8, 8), (24, 8, 3, 16, 8), (32, 8, 4, 16, 8)],
)
def test_default_workers_have_two_cores_each_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, cores: int, cpu: int, threads: int, cuda: int, mps: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert default_workers(torch.device("cpu")) == cpu
    assert worker_threads(cpu, torch.device("cpu")) == threads
    assert default_workers(torch.device("cuda")) == cuda
    assert default_workers(torch.device("mps")) == mps


def test_workers_at_work_or_media_stages_waiting_mean_more_clips_are_coming() -> None:
    turns = CoreTurns()
    assert not turns.media_busy()
    with turns.media():
        assert turns.media_busy()
    assert not turns.media_busy()  # no worker at work: nothing more comes
    with turns.working():
        assert turns.media_busy()  # between two turns: handing clips on, opening a video
    assert not turns.media_busy()
    with turns.model():
        worker = threading.Thread(target=lambda: turns.media().__enter__())
        worker.start()
        deadline = time.monotonic() + 5
        while not turns._media_waiting and time.monotonic() < deadline:  # it asked for its turn
            time.sleep(0.001)
        assert turns.media_busy()  # one waits for its turn
    worker.join()


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _settled(expected: int) -> int:
    """The process's thread count once it reaches ``expected`` (exiting threads take a moment)."""
    for _ in range(100):
        if (count := _os_threads()) == expected:
            return count
        time.sleep(0.01)
    return _os_threads()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_turn_hands_back_its_openmp_threads() -> None:
    # Idle OpenMP pools of other threads make every operation wake its team from sleep
    # (run/thread_pools.py): a thread's pool must be gone when its turn ends.
    from mmadfer_cli.run.thread_pools import release_thread_pool

    turns, counts = CoreTurns(), {}

    def turn(kind: str) -> None:
        torch.set_num_threads(3)
        with getattr(turns, kind)():
            counts[f"{kind} before"] = _os_threads()
            torch.ones(1 << 22).add_(1)  # parallel: starts this thread's pool of 3
            counts[f"{kind} during"] = _os_threads()
        counts[f"{kind} after"] = _settled(counts[f"{kind} before"])

    release_thread_pool()  # pytest's own thread may hold one from earlier tests
    for kind in ("model", "media"):
        thread = threading.Thread(target=turn, args=(kind,))
        thread.start()
        thread.join()
    if not release_thread_pool():
        pytest.skip("PyTorch does not run on libgomp here")
    for kind in ("model", "media"):
        assert counts[f"{kind} during"] == counts[f"{kind} before"] + 2
        assert counts[f"{kind} after"] == counts[f"{kind} before"]
