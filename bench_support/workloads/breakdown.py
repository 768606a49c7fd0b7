"""The data-stall differential method (Mohan et al., VLDB 2021), per round.

The same model is trained from synthetic batches already in memory (pure compute), from
the dataset fully cached (adds CPU preparation) and from the dataset verified cold (adds
the storage fetch). The differences of the three epochs attribute the stall. In a round
the synthetic and the warm epoch run in the untimed setup (each timed by the training
loop); the cold epoch is the round pytest-benchmark times.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from bench_support.measure import pagecache
from bench_support.workloads.data import make_loader
from bench_support.workloads.training import EpochResult, TrainingRun, summarise

SOURCES = ("synthetic", "warm", "cold")


def stall_figures(epoch_s: Mapping[str, float]) -> Dict[str, float]:
    """Stall attribution from the mean epoch times of the three sources.

    A stall cannot be negative: a negative difference is noise, kept visible in ``*_raw_s``.
    """
    prep_raw = epoch_s["warm"] - epoch_s["synthetic"]
    fetch_raw = epoch_s["cold"] - epoch_s["warm"]
    prep, fetch = max(0.0, prep_raw), max(0.0, fetch_raw)
    return {
        "prep_stall_raw_s": prep_raw,
        "fetch_stall_raw_s": fetch_raw,
        "prep_stall_s": prep,
        "fetch_stall_s": fetch,
        "stall_frac": (prep + fetch) / epoch_s["cold"] if epoch_s["cold"] > 0 else None,
    }


class StallBreakdown:
    """Three epochs per round on one model and loader; ``setup`` and ``cold_epoch`` are the round."""

    def __init__(
        self, model: str, optimizer: str, train, val, batch: int, num_classes: int, paths: Sequence[str], method: str
    ) -> None:
        import torch

        self.paths, self.method = list(paths), method
        self.real = make_loader(train, batch)
        torch.manual_seed(0)
        shapes = [(x.shape, y.shape) for x, y in make_loader(train, batch, shuffle=False)]
        self.synthetic = [(torch.randn(xs), torch.randint(0, num_classes, ys)) for xs, ys in shapes]
        self.run = TrainingRun(model, optimizer, self.real, make_loader(val, 64, shuffle=False), num_classes)
        self.epochs: Dict[str, List[EpochResult]] = {source: [] for source in SOURCES}
        self.residency: Dict[str, List[float]] = {"warm": [], "cold": []}

    def setup(self) -> None:
        for source, loader in (("synthetic", self.synthetic), ("warm", self.real)):
            if source == "warm":
                self.residency["warm"].append(pagecache.prepare(self.paths, "warm", None).frac)
            self.run.train_loader = loader
            self.epochs[source].append(self.run.epoch())
        self.residency["cold"].append(pagecache.prepare(self.paths, "cold", self.method).frac)
        self.run.train_loader = self.real

    def cold_epoch(self) -> None:
        self.epochs["cold"].append(self.run.epoch())

    def figures(self, measured: int) -> Dict[str, Optional[Any]]:
        summary = {source: summarise(results[-measured:]) for source, results in self.epochs.items()}
        out: Dict[str, Any] = {}
        for source, s in summary.items():
            out[f"{source}_epoch_s"] = s["epoch_s"]
            out[f"{source}_samples_per_s"] = s["samples_per_s"]
        out["compute_samples_per_s"] = summary["synthetic"]["samples_per_s"]
        out.update(stall_figures({source: s["epoch_s"] for source, s in summary.items()}))
        out["resident_frac_before_cold"] = max(self.residency["cold"][-measured:])
        out["resident_frac_before_warm"] = min(self.residency["warm"][-measured:])
        return out
