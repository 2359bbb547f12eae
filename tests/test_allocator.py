"""Freed memory stays in the process: the model's next batch reuses it without page faults."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from mmadfer_cli.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_block_freed_and_allocated_again_does_not_fault_its_pages_back_in() -> None:
    assert keep_freed_memory()
    size = 64 * 2**20 // 4  # 64 MiB of float32: glibc would mmap it and unmap it on free
    torch.ones(size)  # the first use of the heap's pages faults them in once
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        block = torch.ones(size)
        del block
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
    assert faults < size * 4 // 4096 // 4  # without it: every round faults all 16,384 pages
