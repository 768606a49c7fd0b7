"""The suite's command-line options, checked at parse time.

Every check that needs only the value itself is an argparse ``type=`` parser
(:mod:`bench_support.plugin.parsers`), so a bad value is refused before anything runs,
as one line naming the option. Checks that need several options together happen when
the state is built (:mod:`bench_support.plugin.state`).
"""

from __future__ import annotations

import argparse
import os

import pytest

from bench_support.board.power_modes import power_modes_option
from bench_support.intervals import MOST_TRIALS
from bench_support.measure.machine import DEVICE_ID_MOST_BYTES, device_name_option
from bench_support.measure.power import BACKENDS, DEFAULT_INTERVAL_S
from bench_support.plugin.parsers import (
    at_least,
    existing_dir,
    host_port,
    named_dir,
    one_line_usage_errors,
    parser_of,
    path_text,
    percent,
    positive_seconds,
)
from bench_support.plugin.server import CHILD_OPTION
from bench_support.profiles import ISOLATE_CHOICES, PROFILES
from bench_support.workloads.data import check_cifar_root
from bench_support.workloads.loading import THREAD_POLICIES

CL_MODELS = ("smallcnn", "mobilenet_v3_small", "resnet18")
#: An idle measurement longer than this is a typo (1e9), not a wish: the run would wait silently for years.
IDLE_MAX_S = 600.0

#: The largest --data-seed: numpy's generators take seeds below 2**32, torch's a signed 64-bit one, and the suite
#: derives further seeds from it by small offsets.
SEED_MOST = 2**31 - 1

# The other whole-number options' upper bounds: far beyond any sensible use, low enough that a typo (an extra zero, a
# pasted number) is refused here, in one line, instead of exhausting the memory, the disk or the days of a run.
#: --train-images, --val-images: 20x CIFAR-10's 50 000 training images; a million JPEG files is 1 GB at 32 px and
#: 300 GB at 1024 px, hours of drawing, and the list of files to draw is built in memory first.
IMAGES_MOST = 1_000_000
#: --cl-image-size: 8x the default 128 px and 4.5x the 224 px torchvision's models were trained at (they and
#: smallcnn pool globally, so any size from 32 runs); drawing one 1024 px image takes 0.1 GB and 0.4 s, a
#: 100 000 px one asked for 149 GiB.
IMAGE_SIZE_MOST = 1024
#: --cl-pretrain-images: 8x the full profile's 32 768; they are all held in memory, 12 KiB each at 64 px: 3 GiB.
PRETRAIN_IMAGES_MOST = 262_144
#: --cl-epochs: 250x the default 4; every epoch adds its figures, checkpoint writes and a point to each plot.
EPOCHS_MOST = 1000
#: --cl-batch: 16x the Jetson study's largest batch (64); a batch of photos never holds more than the photos there are.
BATCH_MOST = 1024
#: --cl-workers: each DataLoader worker is a process of its own; 64 is more than any edge board has cores.
WORKERS_MOST = 64
#: --trials: the most the report ever advises (``MOST_TRIALS``); each trial is another pass over the whole grid.
TRIALS_MOST = MOST_TRIALS
#: --trial-seed: the default is drawn below 2**32, so every recorded seed replays (and JSON readers keep it exact).
TRIAL_SEED_MOST = 2**32 - 1
#: --crash-trials: 5x the 200 docs/methods.md suggests; each trial durably writes a 16 MiB checkpoint, so 1000 is
#: 16 GiB of wear on an SD card.
CRASH_TRIALS_MOST = 1000
#: --dist-nnodes (--dist-node-rank below it): the grid's largest world size is 4 and each node runs a rank at least,
#: so more nodes skip every configuration; 256 leaves room for a grid of one's own.
NODES_MOST = 256

#: The options whose value is a path (NAME=PATH included): written apart from their value, pytest would take an
#: existing one for a test path (plugin/upstream.py, realign_rootdir).
PATH_OPTIONS = ("--data-dir", "--save-results", "--cifar-root", "--data-root", "--ckpt-dir", "--data-real")


# --- the options --------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    one_line_usage_errors(parser)
    group = parser.getgroup("edge-bench", "edge training benchmarks")
    add = group.addoption
    add(
        "--profile",
        choices=sorted(PROFILES),
        default=os.environ.get("BENCH_PROFILE", "quick"),
        help="which grid and sizes to run: "
        + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())
        + " (default: quick, or $BENCH_PROFILE)",
    )
    add(
        "--data-dir",
        metavar="DIR",
        type=existing_dir("--data-dir"),
        default=None,
        help="existing, writable directory for the generated datasets (default: ./data, or $BENCH_DATA_DIR)",
    )
    add(
        "--train-images",
        metavar="N",
        type=at_least(4, "--train-images", "one image per class", most=IMAGES_MOST),
        default=None,
        help=f"generated training images (default: the profile's; at most {IMAGES_MOST:,})",
    )
    add(
        "--val-images",
        metavar="N",
        type=at_least(4, "--val-images", "one image per class", most=IMAGES_MOST),
        default=None,
        help=f"generated held-out images (default: the profile's; at most {IMAGES_MOST:,})",
    )
    add(
        "--data-seed",
        metavar="N",
        type=at_least(0, "--data-seed", most=SEED_MOST),
        default=0,
        help="seed of the generated dataset (default 0)",
    )
    add(
        "--device-name",
        metavar="NAME",
        type=parser_of(device_name_option),
        default=None,
        help="name of this device's results folder (default: board or CPU model plus hostname): its letters and "
        "digits, of any script, lower-cased, other characters as dashes; at most "
        f"{DEVICE_ID_MOST_BYTES} bytes",
    )
    add(
        "--cifar-root",
        metavar="DIR",
        type=parser_of(check_cifar_root),
        default=None,
        help="train on a local CIFAR-10 copy (DIR/cifar-10-batches-py) instead of generated images; never downloads",
    )
    add(
        "--save-results",
        metavar="DIR",
        type=path_text("--save-results"),
        default=None,
        help="save this run under DIR/<device-id>/ and compare it with this device's previous run there",
    )
    add(
        "--data-root",
        metavar="NAME=PATH",
        action="append",
        default=[],
        type=named_dir("--data-root", ("data-dir",)),
        help="also place the dataset on PATH (an SD card, an NVMe, a USB disk), named NAME, and run the page-cache "
        "and training benchmarks on it; repeatable",
    )
    add(
        "--cache-drop",
        choices=("auto", "drop_caches", "fadvise"),
        default="auto",
        help="how to make data cold: fadvise (per file, no privilege; what auto picks) or drop_caches (root; "
        "the whole system, as the Jetson study: also evicts library code the next round reads back)",
    )
    add(
        "--thread-policy",
        choices=THREAD_POLICIES,
        default="default",
        help="torch threads of the training process while DataLoader workers run: default (torch's own: all "
        "cores) or reserve (cores minus workers)",
    )
    add(
        "--trace-steps",
        action="store_true",
        help="save every training step's fetch and compute seconds with the result (extra_info 'steps')",
    )
    add(
        "--ckpt-dir",
        metavar="NAME=PATH",
        action="append",
        default=[],
        type=named_dir("--ckpt-dir", ("project", "shm")),
        help="also benchmark checkpoint writes into PATH (an SD card, an NVMe...), named NAME; repeatable",
    )
    add(
        "--trials",
        metavar="N",
        type=at_least(1, "--trials", most=TRIALS_MOST),
        default=None,
        help="measure every benchmark in N interleaved trials, each pass over a module's grid in a seeded shuffled "
        f"order, merged into one result (default: the profile's; at most {TRIALS_MOST}; docs/methods.md)",
    )
    add(
        "--precision-target",
        metavar="PCT",
        type=percent("--precision-target"),
        default=None,
        help="flag a time whose 95 %% interval of the median is wider than PCT of it, e.g. 10%%; the last trial adds "
        "rounds until it is within (default: the profile's, quick 5%%, full 2%%; docs/methods.md)",
    )
    add(
        "--round-budget",
        metavar="SECONDS",
        type=positive_seconds("--round-budget", allow_zero=True),
        default=None,
        help="wall time a benchmark may spend on rounds beyond the profile's to reach the target (default: the "
        "profile's, quick 3, full 60; 0: none)",
    )
    add(
        "--trial-seed",
        metavar="N",
        type=at_least(0, "--trial-seed", most=TRIAL_SEED_MOST),
        default=None,
        help="the seed of the trials' order (default: drawn at random; the saved run records it, so this replays it)",
    )
    add(
        "--isolate",
        choices=ISOLATE_CHOICES,
        default=None,
        help="benchmark: run each benchmark in a fresh process, so its memory does not depend on what ran before and "
        "its interval includes what changes between processes; none: everything in this process "
        "(default: the profile's; docs/methods.md)",
    )
    add(CHILD_OPTION, dest="edge_bench_child", default=None, help=argparse.SUPPRESS)  # a child process's spec
    add(
        "--crash-trials",
        metavar="N",
        type=at_least(0, "--crash-trials", "0 is off", most=CRASH_TRIALS_MOST),
        default=0,
        help="run the checkpoint crash-consistency check with N kill trials "
        f"(default 0: off; at most {CRASH_TRIALS_MOST})",
    )
    add(
        "--power-backend",
        choices=BACKENDS,
        default="auto",
        help="where power comes from (auto tries jtop, ina3221, tegrastats, rapl, nvml in that order)",
    )
    add(
        "--power-interval",
        metavar="SECONDS",
        type=positive_seconds("--power-interval"),
        default=DEFAULT_INTERVAL_S,
        help=f"power sampling interval (default {DEFAULT_INTERVAL_S}; jtop uses at least 0.5)",
    )
    add(
        "--power-idle-s",
        metavar="SECONDS",
        type=positive_seconds("--power-idle-s", allow_zero=True, at_most=IDLE_MAX_S),
        default=3.0,
        help=f"idle power is measured this long before the first benchmark (0: not measured; at most {IDLE_MAX_S:g})",
    )
    add(
        "--jetson-power-mode",
        metavar="MODE",
        default=None,
        help="Jetson only, opt-in: switch to this nvpmodel mode (e.g. MAXN) through jtop; restored afterwards",
    )
    add(
        "--jetson-power-modes",
        metavar="MODES",
        type=parser_of(power_modes_option),
        default=None,
        help="Jetson only, opt-in: run the training and DataLoader grids once per nvpmodel mode (ids or names, "
        "e.g. 0,2), switching through jtop and waiting until the clocks settle; the starting mode is restored",
    )
    add(
        "--jetson-clocks",
        action="store_true",
        default=False,
        help="Jetson only, opt-in: turn jetson_clocks on (DVFS off) through jtop; restored afterwards",
    )
    add(
        "--no-fast-exit",
        action="store_true",
        default=False,
        help="let the interpreter tear torch down at exit (an outside max-RSS reading then includes the "
        "library pages that teardown touches)",
    )
    add(
        "--allow-network",
        action="store_true",
        default=False,
        help="do not install the guard that makes any network access in this run an error",
    )

    cl = parser.getgroup("edge-bench-continual", "continual learning on your own photos (benchmarks/test_continual.py)")
    add = cl.addoption
    add(
        "--data-real",
        metavar="DIR",
        type=path_text("--data-real"),
        default=None,
        help="your photos, named <word>_<word>_<anything>.jpg (class = first two words, e.g. orange_square_01.jpg) "
        "(default: ./data_real; with no photos there, generated stand-in photos are used and the results say so)",
    )
    add(
        "--cl-epochs",
        metavar="N",
        type=at_least(1, "--cl-epochs", most=EPOCHS_MOST),
        default=None,
        help=f"fine-tune epochs (default: the profile's; at most {EPOCHS_MOST})",
    )
    add(
        "--cl-batch",
        metavar="N",
        type=at_least(1, "--cl-batch", most=BATCH_MOST),
        default=4,
        help=f"fine-tune batch size (default 4; at most {BATCH_MOST})",
    )
    add(
        "--cl-image-size",
        metavar="PX",
        type=at_least(32, "--cl-image-size", most=IMAGE_SIZE_MOST),
        default=128,
        help=f"image size, pixels (default 128; 32 to {IMAGE_SIZE_MOST})",
    )
    add(
        "--cl-workers",
        metavar="N",
        type=at_least(0, "--cl-workers", most=WORKERS_MOST),
        default=0,
        help=f"DataLoader workers (default 0; at most {WORKERS_MOST})",
    )
    add(
        "--cl-model",
        choices=CL_MODELS,
        default="smallcnn",
        help="the vision model (default smallcnn: small, global max pooling, learns shapes from synthetic images "
        "quickly; the torchvision ones are what ImageNet weights fit)",
    )
    add(
        "--cl-pretrain-images",
        metavar="N",
        type=at_least(32, "--cl-pretrain-images", most=PRETRAIN_IMAGES_MOST),
        default=None,
        help=f"synthetic images for the factory pretraining (default: the profile's; at most {PRETRAIN_IMAGES_MOST:,})",
    )
    add(
        "--cl-weights",
        choices=("synthetic", "imagenet"),
        default="synthetic",
        help="start of the factory pretraining: random weights (synthetic, default) or torchvision's ImageNet "
        "weights if they are already in the local torch cache (never downloaded)",
    )
    add("--rss-budget-mb", metavar="MB", type=positive_seconds("--rss-budget-mb"), default=None,
        help="mark each fine-tune configuration as within or over this peak-RSS budget")  # fmt: skip
    # Distributed training (benchmarks/test_distributed.py, docs/distributed.md): torchrun's static rendezvous.
    add(
        "--dist-nnodes",
        metavar="N",
        type=at_least(1, "--dist-nnodes", most=NODES_MOST),
        default=1,
        help="machines taking part in the distributed benchmark "
        f"(default 1: this one, over the loopback; at most {NODES_MOST})",
    )
    add(
        "--dist-node-rank",
        metavar="R",
        type=at_least(0, "--dist-node-rank", most=NODES_MOST - 1),
        default=0,
        help="this machine's place among them, 0 to N-1; node 0 drives the rounds (default 0)",
    )
    add(
        "--dist-master",
        metavar="HOST:PORT",
        type=host_port("--dist-master"),
        default=None,
        help="node 0's address and a free port there, for the rendezvous (needed with --dist-nnodes > 1; "
        "the only non-loopback address the network guard lets the ranks reach)",
    )
    add(
        "--dist-ifname",
        metavar="IFACE",
        default=None,
        help="network interface gloo uses between machines, e.g. eth0 (default: gloo's choice); its sent "
        "bytes are recorded",
    )
