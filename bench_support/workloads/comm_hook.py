"""A DDP communication hook that does what DDP's default does and times it.

It averages each gradient bucket with one all-reduce, as DDP's default hook does, and
records every bucket's bytes and the time from its hand-off to the end of its all-reduce
(buckets overlap the backward pass and one another: a sum, not the time a step waits).
"""

from __future__ import annotations

import time
from typing import Any


class CommStats:
    """What the communication hook saw: all-reduce seconds and bytes, bucket calls."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds = 0.0
        self.bytes = 0
        self.calls = 0


def timed_allreduce_hook(stats: CommStats):
    import torch.distributed as dist

    def hook(state, bucket):  # no annotations: DDP checks them against its own types
        start = time.perf_counter()
        tensor = bucket.buffer()
        stats.bytes += tensor.numel() * tensor.element_size()
        stats.calls += 1
        tensor.div_(dist.get_world_size())
        future = dist.all_reduce(tensor, async_op=True).get_future()

        def done(fut: Any):
            stats.seconds += time.perf_counter() - start
            return fut.value()[0]

        return future.then(done)

    return hook
