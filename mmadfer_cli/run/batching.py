"""Requests from many threads merged into one call of a batched function.

A GPU is fast only on many items per call (MTCNN on an H200: 28 frames/s one
frame per call, over 1,000 in batches of 64; the model likewise), while each
worker, chunk or remote task has only a few items at a time. Callers hand
their items to one serving thread that takes the items waiting, oldest first, up
to ``max_items``, in one call (a request may be split between two calls, so
calls are full whenever enough is waiting); each caller gets back its own
results, in order. Every call (and every count in ``BatchStats``) is one batch
of at most ``max_items``.
``submit`` hands items over without waiting for their results; with ``max_waiting`` it
waits instead while that many items are already waiting, which bounds the memory that fast
callers can pile up in front of a slow function.
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
    results: list[Result | None]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    taken: int = 0  # items handed to calls so far
    filled: int = 0  # results back so far
    since: float = field(default_factory=time.perf_counter)  # when it was submitted


class BatchedClosed(Exception):
    """The queue was closed (the run is ending) before this request ran."""


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
        max_waiting: int | None = None,
        more_coming: Callable[[], bool] | None = None,
        fill_s: float = 10.0,
    ) -> None:
        self.fn, self.max_items = fn, max_items
        self.gather_s = gather_s  # a short wait for more requests when a call would be small
        self.max_waiting = max_waiting
        # Whether to wait for a full call: items are on their way and waiting costs nothing;
        # at most ``fill_s`` from the oldest item's arrival (its results are not held back long
        # when the items on their way are slow to come: a long video without faces).
        self.more_coming = more_coming
        self.fill_s = fill_s
        self.stats = BatchStats()
        self._waiting: list[_Request[Item, Result]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name=name)
        self._thread.start()

    def __call__(self, items: Sequence[Item]) -> Sequence[Result]:
        return self.submit(items)()

    def submit(self, items: Sequence[Item]) -> Callable[[], Sequence[Result]]:
        """Queue ``items``; the returned function waits for their results (or raises the error
        of their call, or ``BatchedClosed``)."""
        request: _Request[Item, Result] = _Request(items, [None] * len(items))
        if not items:
            request.done.set()
        with self._ready:
            while self._full() and not self._closed:
                self._ready.wait()
            if self._closed:
                raise BatchedClosed("the batching queue is closed")
            if items:
                self._waiting.append(request)
                self._ready.notify_all()

        def result() -> Sequence[Result]:
            request.done.wait()
            if request.error is not None:
                raise request.error
            return request.results  # type: ignore[return-value]

        return result

    def wake(self) -> None:
        """Have a call that waits for more items look again now (``more_coming`` changed)."""
        with self._ready:
            self._ready.notify_all()

    def close(self) -> None:
        """Stop serving once the running call ends; waiting requests fail with ``BatchedClosed``."""
        with self._ready:
            self._closed = True
            for request in self._waiting:
                request.error = BatchedClosed("the batching queue is closed")
                request.done.set()
            self._waiting.clear()
            self._ready.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _queued(self) -> int:
        return sum(len(r.items) - r.taken for r in self._waiting)

    def _full(self) -> bool:
        """Whether a new request must wait for room (one is always let in when none waits)."""
        return self.max_waiting is not None and self._queued() >= self.max_waiting > 0

    def _filling(self) -> bool:
        """Whether the next call waits for more items: it is not full, there is room for them
        (``max_waiting``), its oldest item came less than ``fill_s`` ago and ``more_coming``
        says they are on their way."""
        queued = self._queued()
        room = self.max_waiting is None or queued < self.max_waiting
        filling = queued < self.max_items and room
        fresh = bool(self._waiting) and time.perf_counter() - self._waiting[0].since < self.fill_s
        return self.more_coming is not None and filling and fresh and self.more_coming()

    def _take(self) -> list[tuple[_Request[Item, Result], int, int]] | None:
        """The next call's items, as (request, start, end) slices; None once closed."""
        with self._ready:
            while not self._waiting and not self._closed:
                self._ready.wait()
            while not self._closed and self._filling():
                self._ready.wait(self.gather_s)
            if not self._closed and self._queued() < self.max_items // 4:
                self._ready.wait(self.gather_s)  # let the other callers' items arrive
            if self._closed:
                return None
            taken, total = [], 0
            while self._waiting and total < self.max_items:
                request = self._waiting[0]
                count = min(len(request.items) - request.taken, self.max_items - total)
                taken.append((request, request.taken, request.taken + count))
                request.taken += count
                total += count
                if request.taken == len(request.items):
                    self._waiting.pop(0)
            self._ready.notify_all()  # room for callers waiting on max_waiting
            return taken

    def _serve(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            items = [item for request, a, b in taken for item in request.items[a:b]]
            try:
                t0 = time.perf_counter()
                results = self.fn(items)
                self.stats.add(len(items), time.perf_counter() - t0)
            except BaseException as exc:  # each caller gets the error of its batch
                with self._ready:
                    for request, _, _ in taken:
                        if request in self._waiting:  # its other items are not run
                            self._waiting.remove(request)
                        request.error = exc
                        request.done.set()
                    self._ready.notify_all()
                continue
            first = 0
            for request, a, b in taken:
                request.results[a:b] = results[first : first + b - a]
                first += b - a
                request.filled += b - a
                if request.filled == len(request.items):
                    request.done.set()
