"""The figures of the vocabulary, family by family (see :mod:`bench_support.metrics`)."""

from __future__ import annotations

from typing import List

from bench_support.metrics import HIGHER, LOWER, Metric
from bench_support.metrics.conditions import CONDITIONS, family
from bench_support.metrics.scenarios import SCENARIOS

_family = family

VOCABULARY: List[Metric] = [
    *_family(
        "training",
        [
            (
                "samples_per_s",
                "samples/s",
                HIGHER,
                "training samples per second over the measured epochs (all ranks together)",
                ("training", "dataloader", "distributed"),
            ),
            ("stall_frac", "fraction", LOWER, "share of the epoch spent waiting for data", ("training",)),
            (
                "accuracy",
                "fraction",
                HIGHER,
                "top-1 accuracy on the held-out split after the last epoch",
                ("training",),
            ),
            ("epoch_s", "s", LOWER, "mean wall time of a measured epoch"),
            ("fetch_stall_s", "s", LOWER, "per epoch: time blocked waiting for the next batch"),
            ("compute_s", "s", LOWER, "per epoch: batch in hand to optimizer step done (CUDA events on a GPU)"),
            (
                "first_batch_s",
                "s",
                LOWER,
                "epoch start to first batch in hand (worker start-up included)",
                ("dataloader",),
            ),
            ("loss", "value", LOWER, "mean training loss of the last epoch"),
            ("energy_per_sample_mj", "mJ", LOWER, "energy of the measured epochs per training sample"),
            ("epochs_measured", "count", None, "epochs the figures average over"),
            ("samples_per_epoch", "count", None, "training samples in one epoch"),
            ("samples_measured", "count", None, "training samples over the measured epochs"),
            ("compute_timer", "text", None, "host clock or cuda-events"),
        ],
    ),  # fmt: skip
    *_family(
        "memory",
        [
            (
                "rss_peak_mb",
                "MB",
                LOWER,
                "peak RSS of the benchmark process in the measured rounds (peak reset first)",
                ("training",),
            ),
            (
                "rss_tree_peak_mb",
                "MB",
                LOWER,
                "peak of the process plus its children's private memory (workers)",
                ("dataloader",),
            ),
            ("rss_now_mb", "MB", None, "RSS at the end of the measured rounds"),
            ("rss_delta_mb", "MB", LOWER, "peak minus the RSS just before the measured rounds"),
            ("rss_baseline_mb", "MB", None, "RSS just before the measured rounds"),
            ("rss_anon_mb", "MB", None, "anonymous part of the RSS at the end of the rounds (heap, stacks)"),
            (
                "rss_file_mb",
                "MB",
                None,
                "file-backed part of the RSS at the end of the rounds (libraries): follows the page cache",
            ),
            ("rss_built_mb", "MB", None, "RSS once the work is built, before its first (warm-up) round"),
            (
                "rss_train_delta_mb",
                "MB",
                LOWER,
                "what training adds: peak of the measured epochs minus the RSS with model, optimizer and loader "
                "built, before the first step (gradients, optimizer state, activations)",
            ),
            ("rss_peak_method", "text", None, "how the peak was read (VmHWM after a reset, or sampled)"),
            ("rss_tree_samples", "count", None, "process-tree samples taken"),
        ],
    ),  # fmt: skip
    *_family(
        "power",
        [
            (
                "energy_j",
                "J",
                LOWER,
                "energy over the measured rounds, from a counter or integrated samples",
                ("training",),
            ),
            ("energy_net_j", "J", LOWER, "energy minus idle power times the window"),
            ("power_avg_w", "W", LOWER, "energy divided by the window"),
            ("power_idle_w", "W", None, "idle power measured before the first benchmark"),
            ("power_source", "text", None, "backend, rail or zone the figures come from"),
            ("power_measured_total", "flag", None, "true: a measured input rail; false: a sum of rails or zones"),
            ("power_samples", "count", None, "readings in the window"),
            ("power_interval_mean_s", "s", None, "mean time between readings"),
            ("power_window_s", "s", None, "length of the measured window"),
            ("power_read_errors", "count", None, "readings that failed"),
            ("power_unavailable", "text", None, "why there is no energy figure"),
            ("power_idle_unavailable", "text", None, "why there is no idle power"),
        ],
    ),  # fmt: skip
    *_family(
        "loading",
        [
            ("cpu_util_pct", "%", None, "CPU use of the process tree per round, 100 per busy core", ("dataloader",)),
            (
                "mb_per_s",
                "MB/s",
                HIGHER,
                "dataset bytes per second (loader) or checkpoint bytes per second",
                ("checkpoint",),
            ),
            ("measure", "text", None, "loader (a pass of the loader alone) or training (epochs through it)"),
            ("num_workers", "param", None, "DataLoader worker processes"),
            ("prefetch_factor", "param", None, "batches each worker prepares ahead"),
            ("pin_memory", "param", None, "page-locked host batches"),
            ("persistent_workers", "param", None, "workers kept between epochs"),
            ("thread_policy", "text", None, "torch threads of the training process: default or reserve"),
            ("torch_threads_main", "count", None, "torch threads of the training process"),
            ("torch_threads_worker", "count", None, "torch threads inside a worker"),
            ("cores", "count", None, "logical cores of the machine"),
        ],
    ),  # fmt: skip
    *_family(
        "stall",
        [
            ("synthetic_epoch_s", "s", LOWER, "epoch from batches already in memory (pure compute)"),
            ("warm_epoch_s", "s", LOWER, "epoch from the fully cached dataset"),
            ("cold_epoch_s", "s", LOWER, "epoch from the dataset verified cold"),
            ("synthetic_samples_per_s", "samples/s", HIGHER, "rate of the synthetic epochs"),
            ("warm_samples_per_s", "samples/s", HIGHER, "rate of the warm epochs"),
            ("cold_samples_per_s", "samples/s", HIGHER, "rate of the cold epochs"),
            ("compute_samples_per_s", "samples/s", HIGHER, "the synthetic rate: what compute alone allows"),
            ("prep_stall_s", "s", LOWER, "warm minus synthetic epoch, at least 0: CPU preparation stall"),
            ("fetch_stall_raw_s", "s", None, "cold minus warm epoch as measured (may be negative: noise)"),
            ("prep_stall_raw_s", "s", None, "warm minus synthetic epoch as measured (may be negative: noise)"),
            ("resident_frac_before_cold", "fraction", None, "largest cached share before a cold epoch"),
            ("resident_frac_before_warm", "fraction", None, "smallest cached share before a warm epoch"),
            ("cold_fetch_stall_s", "s", LOWER, "fetch stall of the cold epochs"),
            ("warm_fetch_stall_s", "s", LOWER, "fetch stall of the warm epochs"),
            ("warm_resident_frac_before", "fraction", None, "smallest cached share before a warm epoch"),
            ("cold_epochs", "count", None, "cold epochs measured"),
            ("warm_epochs", "count", None, "warm epochs after them"),
            ("cold_penalty_s", "s", LOWER, "cold minus warm epoch", ("pagecache",)),
        ],
    ),  # fmt: skip
    *_family(
        "pagecache",
        [
            ("read_mb_per_s", "MB/s", HIGHER, "dataset bytes read per second", ("pagecache",)),
            (
                "resident_frac_before",
                "fraction",
                None,
                "cached share of the files before a round (worst round)",
                ("pagecache",),
            ),
            ("disk_read_mb", "MB", None, "bytes the block device read in a round (/proc/diskstats)", ("pagecache",)),
            ("resident_frac_before_rounds", "list", None, "cached share before each measured round"),
            ("cache_state", "param", None, "cold, warm, or rNN: NN % of the files' bytes resident"),
            ("resident_frac_target", "fraction", None, "the residency the cache state asks for (0 cold, 1 warm)"),
            ("start_state", "param", None, "cold-start training: the cache state its first epochs start in"),
            ("reader", "param", None, "raw bytes, or decoded through the DataLoader"),
            ("files", "count", None, "files read"),
            ("read_mb", "MB", None, "bytes of the files"),
            ("read_pages_mb", "MB", None, "bytes rounded up to whole pages: what a cold read must fetch"),
            ("read_amplification", "fraction", None, "device bytes over file bytes"),
            ("disk_reads", "count", None, "read requests completed by the device"),
            ("read_iops", "IOPS", None, "read requests per second"),
            ("disk_read_mb_per_s", "MB/s", None, "device read rate"),
            ("r_await_ms", "ms", None, "mean time a read request took at the device"),
            ("r_await_note", "text", None, "why r_await_ms is empty"),
            ("util_pct", "%", None, "share of the round the device was busy"),
            ("proc_read_mb", "MB", None, "bytes this process fetched from storage (/proc/self/io)"),
            ("io_unavailable", "text", None, "why there are no device counters"),
            ("eviction_method", "text", None, "fadvise or drop_caches"),
            ("page_size", "count", None, "bytes per page of this kernel"),
            ("mem_available_mb_at_start", "MB", None, "MemAvailable before the benchmark"),
        ],
    ),  # fmt: skip
    *_family(
        "checkpoint",
        [
            ("total_ms", "ms", LOWER, "one checkpoint write, all phases (median)", ("checkpoint",)),
            ("fsync_ms", "ms", LOWER, "fsync of the file (median)", ("checkpoint",)),
            ("rename_ms", "ms", LOWER, "rename over the final name (median)", ("checkpoint",)),
            ("write_ms", "ms", LOWER, "serialise and write (median)"),
            ("dirsync_ms", "ms", LOWER, "fsync of the directory (median)"),
            ("ckpt_mb", "MB", None, "size of the checkpoint"),
            ("phases_not_done", "text", None, "phases the write mode skips"),
            ("target", "param", None, "where the checkpoint is written"),
            ("write_mode", "param", None, "durable, atomic or plain"),
            ("existing", "param", None, "overwrite the previous file or write a new one"),
            ("payload", "param", None, "what is saved"),
            ("atomic", "flag", None, "a crash leaves the old or the new checkpoint"),
            ("durable", "flag", None, "the write survives a power loss"),
            ("durability_note", "text", None, "what the mode guarantees on this filesystem"),
            ("crash_trials", "count", None, "writers killed at random moments"),
            ("crash_killed", "count", None, "kills that arrived before the write finished"),
            ("crash_completed", "count", None, "writes that finished before the kill"),
            ("crash_torn", "count", LOWER, "trials that left a torn checkpoint"),
            ("crash_stale_temps_seen", "count", None, "trials after which a temp file lay there"),
            ("crash_stale_temps_left", "count", LOWER, "temp files after a final clean write"),
            ("crash_write_s", "s", None, "one uninterrupted write, fork to exit"),
        ],
    ),  # fmt: skip
    *_family(
        "storage",
        [
            ("fs_type", "text", None, "filesystem of the data or target, from mountinfo"),
            ("mount_point", "text", None, "its mount point"),
            ("block_device", "text", None, "the disk below it, or null with block_device_unavailable"),
            ("partition", "text", None, "the partition below it"),
            ("block_device_note", "text", None, "how the device was found"),
            ("block_device_unavailable", "text", None, "why there is no block device (tmpfs, overlay)"),
        ],
    ),  # fmt: skip
    *_family(
        "dataset",
        [
            ("dataset", "text", None, "generated set name or cifar10"),
            ("dataset_mb", "MB", None, "bytes of the image files"),
            ("dataset_dir", "text", None, "where it lies"),
            ("num_classes", "count", None, "classes"),
            ("train_samples", "count", None, "training images"),
            ("val_samples", "count", None, "held-out images"),
            ("data_root", "param", None, "which data root the files were read from"),
            ("model", "text", None, "the model trained"),
            ("batch", "param", None, "batch size"),
            (
                "image_size",
                "param",
                None,
                "side of the images in px (from 160 px on, textured JPEGs of a photo's weight)",
            ),
        ],
    ),  # fmt: skip
    *SCENARIOS,
    *CONDITIONS,
]
