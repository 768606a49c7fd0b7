"""Distributed data-parallel training epochs, launched by torchrun: world size x backend.

Each configuration is one torchrun launch (PyTorch's launcher and rendezvous; the suite
starts no process group of its own). One round is one epoch in which every rank trains
on its shard of the training set and all-reduces its gradients at every step; the
warm-up epoch is run but not counted. Per configuration: samples/s overall and per
rank, scaling efficiency against world size 1, the communication share of a step (from
steps with and without the all-reduce), all-reduce time and bytes per step, the bytes
the network interface sent, and every rank's peak RSS.

Not in a default run (``pytest benchmarks/``): run it with ``./run.sh distributed`` or
by naming this file. Across machines: ``docs/distributed.md``.
"""

import pytest

from bench_support.measure.power import energy_per_sample_mj
from bench_support.workloads.distributed import DistributedRun

pytestmark = pytest.mark.benchmark(group="distributed")

#: Not in a plain ``pytest benchmarks/``: run when this file is named on the command line, as this command does.
ON_REQUEST = "./run.sh distributed"
#: Each trial would launch torchrun again for every world size: measured once per run.
TRIALS = 1
#: Its configurations share one fresh process: the world-size-1 throughput the others scale against is kept there.
ISOLATE = "trial"

# world_size last: world size 1 of a configuration runs before the others, which scale against it.
GRID = {
    "smoke": {"model": ["mobilenet_v3_small"], "batch": [8], "optimizer": ["sgd"], "backend": ["gloo"],
              "image_size": [32], "world_size": [1, 2]},
    "quick": {"model": ["resnet18"], "batch": [16], "optimizer": ["sgd"], "backend": ["gloo", "nccl"],
              "image_size": [32], "world_size": [1, 2]},
    "full": {"model": ["mobilenet_v3_small", "resnet18"], "batch": [16, 32], "optimizer": ["sgd"],
             "backend": ["gloo", "nccl"], "image_size": [32], "world_size": [1, 2, 4]},
}  # fmt: skip


def test_distributed_epoch(
    suite, harness, profile, image_datasets, single_rank_throughput, say, model, batch, optimizer, backend,
    image_size, world_size,
):  # fmt: skip
    train, _, info = image_datasets(image_size)
    config = {
        "backend": backend, "model": model, "batch": batch, "optimizer": optimizer, "image_size": image_size,
        "num_classes": info["num_classes"], "seed": suite.data_seed, "dataset_dir": info["dataset_dir"],
        "cifar_root": suite.cifar_root,
    }  # fmt: skip
    key = (model, batch, optimizer, backend, image_size)
    with DistributedRun(config, world_size, suite.topology, suite.project_dir, say) as run:
        run.measure_rounds(harness, profile.training)
        figures = run.figures(harness.measured_rounds, single_rank_throughput.get(key))
    if world_size == 1:
        single_rank_throughput[key] = figures["samples_per_s"]
    # This node's energy over this node's samples (its ranks' share of the world).
    samples = figures["samples_per_epoch"] * harness.measured_rounds * run.nproc // world_size
    figures["energy_per_sample_mj"] = energy_per_sample_mj(harness.extra_info["energy_j"], samples)
    harness.extra_info.update(figures, **info)
