"""``Batched``: a request larger than the batch size runs (and is counted) as full batches; with
``more_coming`` a call waits for a full batch while more items are on their way."""

from __future__ import annotations

import threading
import time

import numpy as np

from mmadfer_cli.run.batching import Batched


def test_a_request_larger_than_max_items_runs_as_batches_each_counted() -> None:
    # The Ray engine's summary counts the model's batches from these stats: one segment with
    # more faces than --batch-size is several batches, not one.
    sizes: list[int] = []

    def tenfold(items: list[int]) -> np.ndarray:  # an array, as the model's predictions
        sizes.append(len(items))
        return 10 * np.asarray(items)

    batched = Batched(tenfold, max_items=4)
    assert np.array_equal(np.asarray(batched(list(range(10)))), 10 * np.arange(10))
    assert sizes == [4, 4, 2]
    assert (batched.stats.calls, batched.stats.items) == (3, 10)


def test_a_call_waits_for_a_full_batch_while_more_items_are_coming() -> None:
    # On the CPU the model takes turns with the media stages: waiting for a full batch while a
    # worker makes clips costs nothing, and batches of one are slower per clip.
    sizes: list[int] = []
    coming = threading.Event()
    coming.set()
    batched = Batched(lambda items: sizes.append(len(items)) or items, max_items=4,
                      gather_s=0.01, more_coming=coming.is_set)  # fmt: skip
    first = [batched.submit([i]) for i in range(6)]  # a full batch, then two of the next
    first[3]()
    assert sizes == [4]
    coming.clear()  # nothing more on its way: the partial batch goes
    assert list(first[5]()) == [5]
    assert sizes == [4, 2]
    batched.close()


def test_a_waiting_call_goes_when_woken_once_nothing_more_is_coming() -> None:
    # The last worker is done: its video's last clips must not wait out the polling interval.
    coming = threading.Event()
    coming.set()
    batched = Batched(lambda items: items, max_items=4, gather_s=30, more_coming=coming.is_set)
    pending = batched.submit([1])
    time.sleep(0.1)  # the call is waiting for more items
    started = time.perf_counter()
    coming.clear()
    batched.wake()
    assert list(pending()) == [1] and time.perf_counter() - started < 10
    batched.close()


def test_a_call_waits_for_more_items_only_so_long() -> None:
    # Items on their way may be slow to come (a long video without faces after a short one):
    # the first video's rows must not wait for them all that time.
    sizes: list[int] = []
    batched = Batched(lambda items: sizes.append(len(items)) or items, max_items=4,
                      gather_s=0.01, more_coming=lambda: True, fill_s=0.2)  # fmt: skip
    started = time.perf_counter()
    assert list(batched.submit([1, 2])()) == [1, 2]
    assert sizes == [2] and 0.2 <= time.perf_counter() - started < 5
    batched.close()
