"""What the harness adds to an epoch: paired bare and instrumented epochs.

    python -m bench_support.overhead [--model resnet18] [--pairs 16] [--epochs 2] [--data-dir data]
    python -m bench_support.overhead --power-sampler [--power-interval 0.1]

Each pair runs the same model, loader and batch size in both arms, ``--epochs``
epochs per arm, alternating which arm goes first, and prints the median and quartiles
of the per-pair ratio with a distribution-free 95 % interval for the median. By
default: a bare PyTorch loop against the suite's instrumented epoch inside the windows
every result carries (:class:`~bench_support.measure.harness.Instruments`: memory and
interference sampling, power where this machine has a source). With
``--power-sampler``: the instrumented epoch with no power source against the same
with a power sampler reading an INA3221-shaped hwmon tree (the real sysfs code path)
at ``--power-interval``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import torch

from bench_support.measure.harness import Instruments
from bench_support.measure.memory import MemoryWindow
from bench_support.measure.power import PowerWindow
from bench_support.measure.power.sources import Ina3221Source
from bench_support.workloads.data import DatasetSpec, ensure_dataset, image_folders, make_loader
from bench_support.workloads.training import bare_epoch, build_model, build_optimizer, train_epoch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per arm of a pair")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--power-sampler", action="store_true")
    parser.add_argument("--power-interval", type=float, default=0.1)
    args = parser.parse_args(argv)

    directory = ensure_dataset(args.data_dir, DatasetSpec(args.n_train, 16, args.image_size))
    train, _ = image_folders(directory, args.image_size)
    loader = make_loader(train, args.batch)
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(args.model, len(train.classes))
    optimizer = build_optimizer(args.optimizer, model.parameters())

    def bare() -> float:
        start = time.perf_counter()
        for _ in range(args.epochs):
            bare_epoch(model, loader, optimizer, device)
        return time.perf_counter() - start

    sampler_shares = []

    def instrumented() -> float:
        start = time.perf_counter()
        with Instruments() as instruments:
            for _ in range(args.epochs):
                train_epoch(model, loader, optimizer, device)
        elapsed = time.perf_counter() - start
        if "sampler_cpu_share" in instruments.figures:
            sampler_shares.append(instruments.figures["sampler_cpu_share"])
        return elapsed

    if args.power_sampler:
        source = _fake_ina3221()

        def bare() -> float:  # noqa: F811 - the baseline of this comparison: no power source
            return _timed_window(PowerWindow(None, "none"))

        def instrumented() -> float:  # noqa: F811
            return _timed_window(PowerWindow(source, interval_s=args.power_interval))

        def _timed_window(window: PowerWindow) -> float:
            start = time.perf_counter()
            with MemoryWindow(), window:
                for _ in range(args.epochs):
                    train_epoch(model, loader, optimizer, device)
            return time.perf_counter() - start

    bare(), instrumented()  # warm-up: allocator growth, first touch of the data
    ratios = []
    for i in range(args.pairs):
        if i % 2:
            b, h = bare(), instrumented()
        else:
            h, b = instrumented(), bare()
        ratios.append(h / b)
        print(f"pair {i + 1}: bare {b:.3f} s, harness {h:.3f} s, ratio {h / b:.4f}", flush=True)
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    low, high = median_interval(ratios)
    what = f"power sampler at {args.power_interval} s" if args.power_sampler else "harness"
    print(
        f"{what} overhead: median {100 * (median - 1):+.2f} % (IQR {100 * (q1 - 1):+.2f} .. {100 * (q3 - 1):+.2f} %; "
        f"95 % interval of the median {100 * (low - 1):+.2f} .. {100 * (high - 1):+.2f} %), "
        f"{args.pairs} pairs of {args.epochs} epoch(s), {args.model} b{args.batch} {args.image_size}px "
        f"on {torch.get_num_threads()} threads"
    )
    if sampler_shares:
        # Measured directly, so the machine's own noise (which a paired ratio cannot escape) does not blur it.
        print(
            "sampling thread's CPU time over the instrumented arms: "
            f"median {100 * statistics.median(sampler_shares):.3f} % of the wall time "
            f"(max {100 * max(sampler_shares):.3f} %)"
        )


def median_interval(values, confidence: float = 0.95):
    """A distribution-free interval for the median: order statistics from the binomial(n, 1/2).

    The narrowest symmetric pair (k-th smallest, k-th largest) whose coverage is still at
    least ``confidence``; with fewer than 6 values no pair reaches 95 % and the range (with
    less coverage) is returned.
    """
    ordered = sorted(values)
    n = len(ordered)
    coverage = lambda k: 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n  # noqa: E731
    k = 1
    while k + 1 <= n // 2 and coverage(k + 1) >= confidence:
        k += 1
    return ordered[k - 1], ordered[n - k]


def _fake_ina3221():
    """An INA3221-shaped hwmon tree in a temp dir, read by the real Ina3221Source."""
    root = tempfile.mkdtemp(prefix="edge-bench-ina3221-")
    hwmon = os.path.join(root, "1-0040", "hwmon", "hwmon0")
    os.makedirs(hwmon)
    for name, value in (("in1_label", "VDD_IN"), ("in1_input", "5000"), ("curr1_input", "1200")):
        with open(os.path.join(hwmon, name), "w") as fh:
            fh.write(value + "\n")
    return Ina3221Source(root)


if __name__ == "__main__":
    main()
