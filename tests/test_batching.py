"""``Batched``: a request larger than the batch size runs (and is counted) as full batches."""

from __future__ import annotations

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
