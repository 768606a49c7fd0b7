"""What the harness adds to an epoch: paired bare and instrumented epochs.

    python -m bench_support.overhead [--model resnet18] [--pairs 10] [--data-dir data]
    python -m bench_support.overhead --power-sampler [--power-interval 0.1]

Each pair runs the same model, loader and batch size twice, alternating which goes
first, and prints the median and quartiles of the per-pair ratio. By default: a bare
PyTorch loop against the suite's instrumented epoch inside a memory window. With
``--power-sampler``: the instrumented epoch with no power source against the same
with a power sampler reading an INA3221-shaped hwmon tree (the real sysfs code path)
at ``--power-interval``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from bench_support.measure.memory import MemoryWindow
from bench_support.measure.power import PowerWindow
from bench_support.measure.power_sources import Ina3221Source
from bench_support.workloads.data import DatasetSpec, ensure_dataset, image_folders, make_loader
from bench_support.workloads.training import bare_epoch, build_model, build_optimizer, train_epoch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=10)
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
        bare_epoch(model, loader, optimizer, device)
        return time.perf_counter() - start

    def instrumented() -> float:
        start = time.perf_counter()
        with MemoryWindow():
            train_epoch(model, loader, optimizer, device)
        return time.perf_counter() - start

    if args.power_sampler:
        source = _fake_ina3221()

        def bare() -> float:  # noqa: F811 - the baseline of this comparison: no power source
            return _timed_window(PowerWindow(None, "none"))

        def instrumented() -> float:  # noqa: F811
            return _timed_window(PowerWindow(source, interval_s=args.power_interval))

        def _timed_window(window: PowerWindow) -> float:
            start = time.perf_counter()
            with MemoryWindow(), window:
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
    what = f"power sampler at {args.power_interval} s" if args.power_sampler else "harness"
    print(
        f"{what} overhead: median {100 * (median - 1):+.2f} % (IQR {100 * (q1 - 1):+.2f} .. {100 * (q3 - 1):+.2f} %), "
        f"{args.pairs} pairs, {args.model} b{args.batch} {args.image_size}px on {torch.get_num_threads()} threads"
    )


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
