"""One rank of the distributed training benchmark; torchrun starts it.

    python -m bench_support.workloads.torchrun ... -m bench_support.workloads.distributed_rank CONFIG.json

Every rank builds the same model (same seed), wraps it in DistributedDataParallel and
reads its shard of the training set through a ``DistributedSampler``. Commands come
from the benchmark process over a Unix socket to global rank 0, which broadcasts each
one over the process group, so every rank runs the same sequence:

``epoch``  one training epoch (every step all-reduces the gradients), then a barrier;
``after``  (untimed) the last epoch's figures of every rank, gathered;
``probe``  (untimed) the communication share: pairs of steps, one under ``no_sync``
           (no all-reduce) and one with it, backward passes timed;
``params`` (untimed) a digest of every rank's parameters;
``quit``.

On every node, local rank 0 answers its own node's benchmark process (a node other than
the first receives no commands: its benchmark process waits for the answers).

All-reduce time and bytes: :func:`timed_allreduce_hook`. Every step is
:func:`bench_support.workloads.training.train_step` (imported with torch, after the network guard).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

from bench_support.measure.memory import rss_hwm_mb, rss_now_mb

#: A collective that waits longer than this means a rank is gone: fail rather than hang.
COLLECTIVE_TIMEOUT_S = 300
PROBE_PAIRS = 8


def _round(mb: Optional[float]) -> Optional[float]:
    return None if mb is None else round(mb, 1)


class CommStats:
    """What the communication hook saw: all-reduce seconds and bytes, bucket calls."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds = 0.0
        self.bytes = 0
        self.calls = 0


def timed_allreduce_hook(stats: CommStats):
    """A DDP communication hook that does what DDP's default does and times it.

    It averages each gradient bucket with one all-reduce, as DDP's default hook does, and
    records every bucket's bytes and the time from its hand-off to the end of its all-reduce
    (buckets overlap the backward pass and one another: a sum, not the time a step waits).
    """
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


class Rank:
    def __init__(self, config: Dict[str, Any]) -> None:
        import torch
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data import DataLoader
        from torch.utils.data.distributed import DistributedSampler

        from bench_support.workloads.data import cifar10, image_folders
        from bench_support.workloads.training import build_model, build_optimizer

        self.torch, self.dist = torch, dist
        self.config = config
        torch.set_num_threads(config["threads_per_rank"])
        dist.init_process_group(config["backend"], timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if config["backend"] == "nccl":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if config.get("cifar_root"):
            train, _ = cifar10(config["cifar_root"], config["image_size"])
        else:
            train, _ = image_folders(config["dataset_dir"], config["image_size"])
        self.sampler = DistributedSampler(
            train, num_replicas=self.world, rank=self.rank, shuffle=True, seed=config["seed"], drop_last=True
        )
        self.loader = DataLoader(train, batch_size=config["batch"], sampler=self.sampler, drop_last=True)
        torch.manual_seed(config["seed"])  # every rank starts from the same weights (DDP also broadcasts them)
        model = build_model(config["model"], config["num_classes"]).to(self.device)
        device_ids = [self.local_rank] if self.device.type == "cuda" else None
        self.model = DistributedDataParallel(model, device_ids=device_ids)
        self.comm = CommStats()
        self.model.register_comm_hook(None, timed_allreduce_hook(self.comm))
        self.optimizer = build_optimizer(config["optimizer"], self.model.parameters())
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.epochs = 0
        self.last: Dict[str, Any] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _batches(self):
        for inputs, targets in self.loader:
            yield inputs.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)

    def epoch(self) -> None:
        from bench_support.workloads.training import train_step

        self.model.train()
        self.sampler.set_epoch(self.epochs)
        self.epochs += 1
        self.comm.reset()
        steps, samples, step_s = 0, 0, []
        start = time.perf_counter()
        mark = start
        for inputs, targets in self._batches():
            train_step(self.model, inputs, targets, self.loss_fn, self.optimizer)
            self._sync()
            now = time.perf_counter()
            step_s.append(now - mark)
            mark = now
            steps += 1
            samples += len(targets)
        loop_s = time.perf_counter() - start
        self.dist.barrier()
        self.last = {
            "rank": self.rank,
            "steps": steps,
            "samples": samples,
            "loop_s": loop_s,
            "step_ms_median": round(1000 * statistics.median(step_s), 3) if step_s else None,
            "allreduce_s": self.comm.seconds,
            "allreduce_bytes": self.comm.bytes,
            "allreduce_calls": self.comm.calls,
            "rss_mb": round(rss_now_mb(), 1),
            # VmHWM: per address space, so not inherited across exec from torchrun's agent.
            "rss_peak_mb": _round(rss_hwm_mb()),
        }

    def probe(self) -> Dict[str, Any]:
        """Pairs of steps, one without the all-reduce (``no_sync``), one with; backward and step timed.

        The gradients of a ``no_sync`` step are kept and averaged by the next step's
        all-reduce (gradient accumulation), so the model stays the same on every rank.
        """
        from bench_support.workloads.training import train_step

        self.model.train()
        batches = self._batches()
        backward: Dict[str, List[float]] = {"sync": [], "no_sync": []}
        step: Dict[str, List[float]] = {"sync": [], "no_sync": []}
        times: List[float] = []  # the step's start, then after its loss and after its backward

        def mark() -> None:
            self._sync()
            times.append(time.perf_counter())

        for _ in range(PROBE_PAIRS):
            for kind in ("no_sync", "sync"):
                try:
                    inputs, targets = next(batches)
                except StopIteration:
                    batches = self._batches()
                    inputs, targets = next(batches)
                times[:] = [time.perf_counter()]
                train_step(
                    self.model,
                    inputs,
                    targets,
                    self.loss_fn,
                    self.optimizer,
                    accumulate=True,  # the sync step steps on both steps' gradients, then clears them
                    update=kind == "sync",
                    no_sync=kind == "no_sync",
                    mark=mark,
                )
                start, mid, end = times
                backward[kind].append(end - mid)
                step[kind].append(end - start)
        self.dist.barrier()
        return {
            "rank": self.rank,
            "backward_ms_sync": round(1000 * statistics.median(backward["sync"]), 3),
            "backward_ms_no_sync": round(1000 * statistics.median(backward["no_sync"]), 3),
            "step_ms_sync": round(1000 * statistics.median(step["sync"]), 3),
            "pairs": PROBE_PAIRS,
        }

    def params_digest(self) -> str:
        """SHA-256 of the parameters (not the buffers: BatchNorm statistics are each rank's own
        between DDP's broadcasts of rank 0's at every forward)."""
        digest = hashlib.sha256()
        for _, tensor in sorted(self.model.module.named_parameters()):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def gather(self, value: Any) -> List[Any]:
        out: List[Any] = [None] * self.world
        self.dist.all_gather_object(out, value)
        return out

    def serve(self, channel: Optional[Channel]) -> None:
        while True:
            box = [channel.receive() if self.rank == 0 else None]
            self.dist.broadcast_object_list(box, src=0)
            command = box[0]
            reply: Dict[str, Any]
            if command == "epoch":
                self.epoch()
                reply = {"done": self.epochs}
            elif command == "after":
                reply = {"ranks": self.gather(self.last)}
            elif command == "probe":
                reply = {"ranks": self.gather(self.probe())}
            elif command == "params":
                reply = {"ranks": self.gather({"rank": self.rank, "digest": self.params_digest()})}
            elif command == "quit":
                return
            else:
                reply = {"error": f"unknown command {command!r}"}
            if channel is not None:
                channel.send(reply)


class Channel:
    """Local rank 0's line to its node's benchmark process (JSON lines over a Unix socket)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.reader = self.sock.makefile("r")

    def receive(self) -> str:
        line = self.reader.readline()
        if not line:
            return "quit"  # the benchmark process went away
        return json.loads(line)["cmd"]

    def send(self, message: Dict[str, Any]) -> None:
        self.sock.sendall((json.dumps(message) + "\n").encode())


def _end_with_the_agent() -> None:
    """A daemon thread: when torchrun's agent is gone (killed), end this rank at once rather than wait in a
    collective for peers that will never come (torchrun starts each rank in a session of its own)."""
    import threading

    agent = os.getppid()

    def watch() -> None:
        while os.getppid() == agent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="agent-watch", daemon=True).start()


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: torchrun ... -m bench_support.workloads.distributed_rank CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        config = json.load(fh)
    from bench_support import netguard

    netguard.install(config.get("allowed_hosts", []))
    _end_with_the_agent()
    channel = Channel(config["control"]) if int(os.environ.get("LOCAL_RANK", "0")) == 0 else None
    try:
        rank = Rank(config)
        if channel is not None:
            channel.send(
                {"ready": {"world_size": rank.world, "rank": rank.rank, "threads_per_rank": config["threads_per_rank"]}}
            )
        rank.serve(channel)
    except Exception as exc:  # noqa: BLE001 - one line to the benchmark process, the traceback on stderr
        import traceback

        traceback.print_exc()
        if channel is not None:
            first = str(exc).splitlines()[0] if str(exc) else ""
            try:
                channel.send({"error": f"rank {os.environ.get('RANK', '?')}: {type(exc).__name__}: {first}"})
            except OSError:
                pass
        return 3
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
