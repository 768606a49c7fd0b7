"""Distributed data-parallel training: the benchmark process's side of one configuration.

:class:`DistributedRun` starts a torchrun launch (:mod:`bench_support.workloads.torchrun`)
and runs one ``epoch`` on every rank per benchmark round; the ranks' own side is
:mod:`bench_support.workloads.distributed_rank`. Figures: throughput overall and per
rank, scaling against world size 1, the exposed communication of a step, all-reduce time
and bytes, the bytes the interface sent, every rank's peak RSS (``docs/distributed.md``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from bench_support.errors import Unavailable
from bench_support.measure import netdev
from bench_support.metrics import MB
from bench_support.profiles import Rounds
from bench_support.workloads.torchrun import Launch, Topology, procs_per_node, threads_per_rank

# --- figures ------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def epoch_figures(ranks: List[Dict[str, Any]], round_s: float) -> Dict[str, Any]:
    """Throughput and communication of one epoch, from every rank's report and the round's wall time."""
    samples = sum(r["samples"] for r in ranks)
    steps = max(r["steps"] for r in ranks)
    return {
        "samples_per_s": round(samples / round_s, 2) if round_s > 0 else None,
        "samples_per_s_per_rank": [round(r["samples"] / r["loop_s"], 2) if r["loop_s"] > 0 else None for r in ranks],
        "steps_per_epoch": steps,
        "samples_per_epoch": samples,
        "allreduce_ms_per_step": round(1000 * _median([r["allreduce_s"] / r["steps"] for r in ranks if r["steps"]]), 3)
        if steps
        else None,
        "allreduce_bytes_per_step": int(_median([r["allreduce_bytes"] / r["steps"] for r in ranks if r["steps"]]))
        if steps
        else None,
        "rss_peak_mb_per_rank": [r["rss_peak_mb"] for r in ranks],
    }


def comm_share(probes: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The exposed communication of a step: backward with the all-reduce minus backward without it.

    Per rank, medians over the probe's pairs; the figure is the median over ranks. It can
    come out slightly negative at world size 1, where there is nothing to wait for: the
    measured value is kept, not clipped.
    """
    exposed = [p["backward_ms_sync"] - p["backward_ms_no_sync"] for p in probes]
    step = [p["step_ms_sync"] for p in probes]
    ms = statistics.median(exposed)
    return {
        "comm_ms_per_step": round(ms, 3),
        "comm_share": round(ms / statistics.median(step), 4) if statistics.median(step) > 0 else None,
        "comm_probe_pairs": probes[0]["pairs"],
        "backward_ms_sync": round(statistics.median(p["backward_ms_sync"] for p in probes), 3),
        "backward_ms_no_sync": round(statistics.median(p["backward_ms_no_sync"] for p in probes), 3),
    }


def scaling_efficiency(samples_per_s: Optional[float], world_size: int, single: Optional[float]) -> Optional[float]:
    """Throughput at ``world_size`` against ``world_size`` times the one-rank throughput."""
    if samples_per_s is None or not single:
        return None
    return round(samples_per_s / (world_size * single), 4)


class NetCounter:
    """Bytes sent over the ranks' interface between :meth:`start` and :meth:`stop` (None: unknown)."""

    def __init__(self, interface: Optional[str]) -> None:
        self.interface = interface
        self._before: Optional[int] = None
        self.sent: Optional[int] = None

    def start(self) -> None:
        self._before = netdev.tx_bytes(self.interface) if self.interface else None

    def stop(self) -> None:
        after = netdev.tx_bytes(self.interface) if self.interface else None
        self.sent = netdev.delta(self._before, after)


def require_backend(backend: str, nproc: int) -> None:
    """Unavailable, with the reason, when this machine cannot run ``backend`` with ``nproc`` ranks."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise Unavailable(f"torch {torch.__version__} was built without torch.distributed")
    if backend == "gloo" and not dist.is_gloo_available():
        raise Unavailable(f"torch {torch.__version__} was built without gloo")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise Unavailable("nccl needs CUDA: no CUDA device visible")
        if not dist.is_nccl_available():
            raise Unavailable(f"torch {torch.__version__} was built without NCCL (usual on Jetson): use gloo")
        if torch.cuda.device_count() < nproc:
            raise Unavailable(f"nccl needs one GPU per rank: {nproc} ranks, {torch.cuda.device_count()} GPU(s) here")


class DistributedRun:
    """One distributed configuration: its launch, its rounds, and the figures of its measured epochs."""

    def __init__(
        self,
        config: Dict[str, Any],
        world_size: int,
        topology: Topology,
        cwd: str,
        say: Callable[[str], None] = print,
    ) -> None:
        self.world_size = world_size
        self.say = say
        self.topology = topology
        self.nproc = procs_per_node(world_size, topology)
        require_backend(config["backend"], self.nproc)
        self.config = dict(config, threads_per_rank=threads_per_rank(self.nproc))
        self.cwd = cwd
        self.round_s: List[float] = []
        self.rounds: List[List[Dict[str, Any]]] = []
        self.net = NetCounter(topology.interface)
        self.launch: Optional[Launch] = None
        self._warmup = 0

    def __enter__(self) -> DistributedRun:
        self.launch = Launch(self.config, self.nproc, self.topology, self.cwd, self.say)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.launch is not None:
            self.launch.__exit__(exc_type, exc, tb)

    def epoch(self) -> None:
        """One round: every rank trains one epoch (timed here, around the whole exchange)."""
        assert self.launch is not None
        if len(self.round_s) == self._warmup:
            self.net.start()  # the first measured epoch
        start = time.perf_counter()
        self.launch.request("epoch")
        self.round_s.append(time.perf_counter() - start)

    def after_epoch(self) -> None:
        """Untimed: every rank's figures of the epoch that just ended."""
        assert self.launch is not None
        self.rounds.append(self.launch.request("after")["ranks"])

    def measure_rounds(self, harness, rounds: Rounds) -> None:
        """Warm-up and measured epochs through the harness; the interface's bytes over the measured ones.

        Memory is each rank's own (``rss_peak_mb_per_rank``): this process's would be the wrong one.
        """
        self._warmup = rounds.warmup
        harness.run(self.epoch, rounds, teardown=self.after_epoch, memory=False)
        self.net.stop()

    def figures(self, measured: int, single_rank_samples_per_s: Optional[float]) -> Dict[str, Any]:
        """Medians over the measured epochs, the communication probe, scaling against world size 1."""
        assert self.launch is not None
        per_round = [epoch_figures(ranks, s) for ranks, s in zip(self.rounds[-measured:], self.round_s[-measured:])]
        median_round_s = statistics.median(self.round_s[-measured:])
        last = per_round[-1]
        samples_per_s = round(last["samples_per_epoch"] / median_round_s, 2)
        steps = last["steps_per_epoch"] * measured
        figures: Dict[str, Any] = {
            "world_size": self.world_size,
            "nnodes": self.topology.nnodes,
            "procs_per_node": self.nproc,
            "threads_per_rank": self.config["threads_per_rank"],
            "backend": self.config["backend"],
            "samples_per_s": samples_per_s,
            "samples_per_s_per_rank": [
                round(statistics.median(f["samples_per_s_per_rank"][i] for f in per_round), 2)
                for i in range(len(last["samples_per_s_per_rank"]))
            ],
            "steps_per_epoch": last["steps_per_epoch"],
            "samples_per_epoch": last["samples_per_epoch"],
            "allreduce_ms_per_step": statistics.median(f["allreduce_ms_per_step"] for f in per_round),
            "allreduce_mb_per_step": round(last["allreduce_bytes_per_step"] / MB, 3),
            "rss_peak_mb_per_rank": [max(vals) for vals in zip(*(f["rss_peak_mb_per_rank"] for f in per_round))],
            "rss_peak_mb_max_rank": max(max(f["rss_peak_mb_per_rank"]) for f in per_round),
            "net_interface": self.topology.interface,
        }
        if self.net.sent is not None and steps:
            figures["net_mb_sent_per_step"] = round(self.net.sent / steps / MB, 3)
        else:
            figures["net_unavailable"] = (
                "no interface named (--dist-ifname)" if not self.topology.interface else "no /proc/net/dev counter"
            )
        figures.update(comm_share(self.launch.request("probe")["ranks"]))
        if self.world_size == 1:
            figures["scaling_efficiency"] = 1.0
        else:
            single = single_rank_samples_per_s
            figures["scaling_efficiency"] = scaling_efficiency(samples_per_s, self.world_size, single)
            if figures["scaling_efficiency"] is None:
                figures["scaling_unavailable"] = "world size 1 of this configuration did not run in this session"
        return figures
