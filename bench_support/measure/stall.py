"""Splitting an epoch's wall time into fetch stall and compute.

The training loop records one monotonic timestamp at the start of the epoch, then
two per step — batch in hand (``ready``) and ``optimizer.step()`` returned
(``done``) — and one at the end of the epoch, after the loader is exhausted::

    start  ready_1 done_1  ready_2 done_2  ...  ready_n done_n  end

Fetch stall of step i is ``ready_i - done_{i-1}`` (``done_0 = start``): the time the
training loop was blocked waiting for data, which with ``num_workers > 0`` is only the
part of loading that prefetch did not hide. Compute of step i is ``done_i - ready_i``.
The final wait ``end - done_n`` (the loader noticing it is exhausted, workers
shutting down) is loader time and counts as fetch. Every instant of the epoch is
either fetch or compute, so the two add up to the epoch exactly.

With loading that overlaps compute this equals the seed study's per-minibatch
``max(fetch + preprocess - compute, 0)``; unlike the study's harness it needs no
synchronisation after every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class EpochSplit:
    epoch_s: float
    fetch_stall_s: float
    compute_s: float
    steps: int
    first_batch_s: float  # start -> first batch in hand (includes worker start-up)

    @property
    def stall_frac(self) -> float:
        return self.fetch_stall_s / self.epoch_s if self.epoch_s > 0 else 0.0


def split_epoch(start: float, ready: Sequence[float], done: Sequence[float], end: float) -> EpochSplit:
    """Fetch/compute split of one epoch from its timestamps (seconds, one clock).

    Raises ValueError when the timestamps are not in the order the loop produces them.
    """
    if len(ready) != len(done):
        raise ValueError(f"{len(ready)} batch timestamps but {len(done)} step timestamps")
    fetch = 0.0
    compute = 0.0
    previous = start
    for r, d in zip(ready, done):
        if not previous <= r <= d:
            raise ValueError("timestamps out of order: start <= ready_i <= done_i <= ready_i+1 <= end")
        fetch += r - previous
        compute += d - r
        previous = d
    if end < previous:
        raise ValueError("epoch end precedes the last step")
    fetch += end - previous
    epoch = end - start
    first = (ready[0] - start) if ready else epoch
    return EpochSplit(epoch_s=epoch, fetch_stall_s=fetch, compute_s=compute, steps=len(ready), first_batch_s=first)


def seed_stall_s(fetch_s: Sequence[float], compute_s: Sequence[float]) -> float:
    """The seed study's definition: sum over minibatches of max(fetch - compute, 0).

    ``fetch_s`` is the time each batch took to load and prepare, ``compute_s`` the
    compute of the step that overlapped it. Kept to check the two definitions agree
    in the cases where they should (see tests).
    """
    return sum(max(f - c, 0.0) for f, c in zip(fetch_s, compute_s))
