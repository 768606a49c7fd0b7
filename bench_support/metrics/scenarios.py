"""The figures of the two scenarios beyond one training loop: continual learning and distributed training."""

from __future__ import annotations

from typing import List

from bench_support.metrics import HIGHER, LOWER, Metric
from bench_support.metrics.conditions import family

SCENARIOS: List[Metric] = [
    *family(
        "continual",
        [
            ("final_acc", "fraction", HIGHER, "held-out accuracy on the photos after the last epoch", ("continual",)),
            ("final_acc_known", "fraction", HIGHER, "that accuracy on the photos of the factory's classes"),
            (
                "final_acc_new",
                "fraction",
                HIGHER,
                "that accuracy on the photos of classes new to the model",
                ("continual",),
            ),
            ("final_acc_per_class", "record", None, "that accuracy per class of the held-out photos"),
            (
                "final_acc_ncm",
                "fraction",
                HIGHER,
                "held-out accuracy of the nearest class mean, among the photos' classes",
                ("continual",),
            ),
            ("final_acc_ncm_known", "fraction", HIGHER, "that accuracy on the photos of the factory's classes"),
            ("final_acc_ncm_new", "fraction", HIGHER, "that accuracy on the photos of classes new to the model"),
            ("final_acc_ncm_per_class", "record", None, "that accuracy per class of the held-out photos"),
            ("views_per_epoch", "count", None, "augmented views of each training photo in one epoch"),
            ("replay_per_batch", "count", None, "synthetic images of the known classes replayed per batch"),
            ("pretrained_acc", "fraction", None, "held-out accuracy of the factory's model as it came (no new rows)"),
            ("lift", "fraction", HIGHER, "final_acc minus pretrained_acc: what learning on the device added"),
            ("forgetting", "fraction", LOWER, "synthetic accuracy lost on the known classes (pretrained minus final)"),
            ("new_classes", "list", None, "the photos' classes the factory never saw: imprinted rows"),
            ("mem_import_mb", "MB", None, "worker peak once its libraries are imported, before the model"),
            ("finetune_s", "s", LOWER, "fine-tune time over all epochs", ("continual",)),
            ("mem_peak_abs_mb", "MB", LOWER, "ru_maxrss of the fine-tune worker", ("continual",)),
            ("mem_delta_mb", "MB", LOWER, "peak since the first step minus the RSS just before it", ("continual",)),
            ("mem_now_mb", "MB", None, "worker RSS after the last epoch"),
            ("mem_baseline_mb", "MB", None, "worker RSS before the first step, its high-water mark reset to it"),
            ("mem_peak_reset", "flag", None, "that reset worked (else the delta is over setup's peak too)"),
            ("mem_peak_method", "text", None, "how the worker's peak was read"),
            ("final_synth_acc", "fraction", HIGHER, "synthetic validation accuracy after the last epoch"),
            ("rss_budget_mb", "MB", None, "the --rss-budget-mb given"),
            ("within_budget", "flag", None, "peak within that budget"),
            ("trainable_params", "count", None, "parameters the fine-tune updates"),
            ("total_params", "count", None, "parameters of the model"),
            ("torch_threads", "count", None, "torch threads of the worker"),
            ("torchvision_loaded", "flag", None, "the worker had imported torchvision (its models need it)"),
            ("config", "text", None, "fine-tune configuration (what-optimizer)"),
            ("finetune", "param", None, "whole network or head only"),
            ("optimizer", "param", None, "adam or sgd"),
            ("model_classes", "list", None, "the model's output classes"),
            ("epochs", "list", None, "per-epoch rows: acc, time_s, memory, checkpoint latency per target"),
            ("before", "record", None, "accuracies before fine-tuning"),
            ("photos", "record", None, "which photos, how many, what was skipped"),
            ("pretraining", "record", None, "the factory checkpoint and its figures"),
            ("ckpt_targets", "record", None, "checkpoint targets and their filesystems"),
            ("settings", "record", None, "the scenario's settings"),
        ],
    ),  # fmt: skip
    *family(
        "distributed",
        [
            ("world_size", "param", None, "ranks in the process group, over every node"),
            ("backend", "param", None, "torch.distributed backend: gloo or nccl"),
            ("nnodes", "count", None, "machines taking part"),
            ("procs_per_node", "count", None, "ranks torchrun started on this node"),
            ("threads_per_rank", "count", None, "torch threads of each rank (the node's cores shared out)"),
            ("samples_per_s_per_rank", "list", None, "per rank: its samples over its own epoch loop time, median"),
            (
                "scaling_efficiency",
                "fraction",
                HIGHER,
                "samples_per_s over world_size times world size 1's",
                ("distributed",),
            ),
            ("scaling_unavailable", "text", None, "why there is no scaling efficiency"),
            (
                "comm_share",
                "fraction",
                LOWER,
                "exposed communication of a step: comm_ms_per_step over the step time",
                ("distributed",),
            ),
            ("comm_ms_per_step", "ms", LOWER, "backward with the all-reduce minus backward without it (no_sync)"),
            ("comm_probe_pairs", "count", None, "step pairs (no_sync, then sync) behind comm_share"),
            ("backward_ms_sync", "ms", None, "median backward pass with the all-reduce"),
            ("backward_ms_no_sync", "ms", None, "median backward pass without it"),
            (
                "allreduce_ms_per_step",
                "ms",
                None,
                "all-reduce time of a step's buckets, hand-off to done, summed (overlaps the backward pass)",
            ),
            ("allreduce_mb_per_step", "MB", None, "gradient MB a rank hands to the all-reduce per step"),
            ("net_interface", "text", None, "the interface the ranks talk over (lo on one machine)"),
            (
                "net_mb_sent_per_step",
                "MB",
                None,
                "MB that interface sent per measured step, all ranks of this node (/proc/net/dev)",
            ),
            ("net_unavailable", "text", None, "why the interface's bytes are not known"),
            ("rss_peak_mb_per_rank", "list", None, "every rank's own peak RSS (VmHWM) over the epochs"),
            ("rss_peak_mb_max_rank", "MB", LOWER, "the largest of them", ("distributed",)),
            ("steps_per_epoch", "count", None, "optimizer steps of a rank in one epoch"),
        ],
    ),  # fmt: skip
]
