"""Requests from many threads merged into one call of a batched function.

A GPU is fast only on many items per call (MTCNN on an H200: 28 frames/s one
frame per call, over 1,000 in batches of 64; the model likewise), while each
worker, chunk or remote task has only a few items at a time. Callers hand
their items to one serving thread that takes everything waiting, up to
``max_items``, in one call; each caller gets back its own results, in order.
A request larger than ``max_items`` runs as several calls of ``max_items``, so
every call (and every count in ``BatchStats``) is one batch of at most that size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Request(Generic[Item, Result]):
    items: Sequence[Item]
    done: threading.Event = field(default_factory=threading.Event)
    results: Sequence[Result] | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """Calls (batches of at most ``max_items``), items and busy seconds of the batched function."""

    calls: int = 0
    items: int = 0
    busy_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, items: int, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.items += items
            self.busy_s += seconds


class Batched(Generic[Item, Result]):
    """``fn`` over lists of items, callable from many threads; their items meet in one call.
    A request larger than ``max_items`` is split into calls of ``max_items``."""

    def __init__(
        self,
        fn: Callable[[list[Item]], Sequence[Result]],
        max_items: int,
        gather_s: float = 0.002,
        name: str = "mmadfer-batched",
    ) -> None:
        self.fn, self.max_items = fn, max_items
        self.gather_s = gather_s  # a short wait for more requests when a call would be small
        self.stats = BatchStats()
        self._waiting: list[_Request[Item, Result]] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._serve, daemon=True, name=name).start()

    def __call__(self, items: Sequence[Item]) -> Sequence[Result]:
        request: _Request[Item, Result] = _Request(items)
        with self._ready:
            self._waiting.append(request)
            self._ready.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results

    def _take(self) -> list[_Request[Item, Result]]:
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            if sum(len(r.items) for r in self._waiting) < self.max_items // 4:
                self._ready.wait(self.gather_s)  # let the other callers' items arrive
            taken, total = [], 0
            while self._waiting and (
                not taken or total + len(self._waiting[0].items) <= self.max_items
            ):
                request = self._waiting.pop(0)
                taken.append(request)
                total += len(request.items)
            return taken

    def _serve(self) -> None:
        while True:
            requests = self._take()
            items = [item for r in requests for item in r.items]
            results: list[Result] = []
            try:
                for start in range(0, len(items), self.max_items):
                    batch = items[start : start + self.max_items]
                    t0 = time.perf_counter()
                    results.extend(self.fn(batch))
                    self.stats.add(len(batch), time.perf_counter() - t0)
            except BaseException as exc:  # each caller gets the error of its batch
                for r in requests:
                    r.error = exc
                    r.done.set()
                continue
            first = 0
            for r in requests:
                r.results = results[first : first + len(r.items)]
                first += len(r.items)
                r.done.set()
