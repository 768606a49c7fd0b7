"""Reading the training files in a verified cache state, and training that starts cold.

``raw`` reads the files' bytes; ``decoded`` reads them through the DataLoader with JPEG
decoding and the training transforms, which shows how much of the cold penalty
decoding hides. The cold start follows the Jetson study: epoch 0 cold, the epochs after
it warm, side by side.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence

from bench_support.measure import pagecache
from bench_support.measure.cache_rounds import CacheRounds
from bench_support.metrics import MB
from bench_support.workloads.data import make_loader
from bench_support.workloads.training import TrainingRun

READERS = ("raw", "decoded")


class FileReads:
    """One round reads every file once, raw or decoded; the cache state is prepared and verified around it."""

    def __init__(self, dataset, paths: Sequence[str], cache_state: str, reader: str, directory: str, method: str):
        if reader not in READERS:
            raise ValueError(f"unknown reader {reader!r}; expected one of {', '.join(READERS)}")
        self.paths = list(paths)
        self.reader, self.cache_state = reader, cache_state
        self.rounds = CacheRounds(directory, self.paths, cache_state, method)
        self.loader = make_loader(dataset, 16, shuffle=False) if reader == "decoded" else None

    def read(self) -> None:
        if self.loader is None:
            pagecache.read_all(self.paths)
        else:
            for _ in self.loader:
                pass

    def figures(self, measured: int) -> Dict[str, Any]:
        info = self.rounds.summary(measured)
        read_bytes = sum(os.path.getsize(p) for p in self.paths)
        info.update(
            cache_state=self.cache_state,
            reader=self.reader,
            files=len(self.paths),
            read_mb=read_bytes / MB,
            read_pages_mb=pagecache.page_rounded_bytes(self.paths) / MB,
            read_mb_per_s=read_bytes / MB / self.rounds.median_seconds(measured),
        )
        if info.get("disk_read_mb") is not None and read_bytes:
            info["read_amplification"] = info["disk_read_mb"] / info["read_mb"]
        return info


def _mean(values: Sequence[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


class ColdStart:
    """mobilenet_v3_small, batch 16, SGD, no workers: one round is one cold epoch (the data
    evicted and verified before it); ``warm_epochs`` follow, each after its residency is checked.

    ``start`` another cache state (``r50``: half the files resident, verified) makes the
    first epochs start there instead; the ``cold_*`` figures then describe that start.
    """

    MODEL, OPTIMIZER, BATCH = "mobilenet_v3_small", "sgd", 16

    def __init__(
        self, train, val, num_classes: int, paths: Sequence[str], directory: str, method: str, start: str = "cold"
    ) -> None:
        self.paths = list(paths)
        self.start = start
        self.rounds = CacheRounds(directory, self.paths, start, method)
        self.run = TrainingRun(
            self.MODEL,
            self.OPTIMIZER,
            make_loader(train, self.BATCH),
            make_loader(val, 64, shuffle=False),
            num_classes=num_classes,
        )
        self.warm_fracs: List[float] = []

    def warm_epochs(self, count: int) -> None:
        for _ in range(count):  # the data is now in the cache: verify, then train on
            self.warm_fracs.append(pagecache.residency(self.paths).frac)
            self.run.epoch()

    def figures(self, measured: int, warm: int) -> Dict[str, Any]:
        cold_epochs = self.run.epochs[-(measured + warm) : len(self.run.epochs) - warm]
        warm_epochs = self.run.epochs[len(self.run.epochs) - warm :]
        info = self.rounds.summary(measured)
        info.update(
            cold_epoch_s=_mean(e.epoch_s for e in cold_epochs),
            warm_epoch_s=_mean(e.epoch_s for e in warm_epochs),
            cold_fetch_stall_s=_mean(e.fetch_stall_s for e in cold_epochs),
            warm_fetch_stall_s=_mean(e.fetch_stall_s for e in warm_epochs),
            warm_resident_frac_before=min(self.warm_fracs),
            cold_epochs=len(cold_epochs),
            warm_epochs=len(warm_epochs),
            start_state=self.start,
        )
        info["cold_penalty_s"] = info["cold_epoch_s"] - info["warm_epoch_s"]
        return info
