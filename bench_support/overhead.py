"""What the harness adds to an epoch: paired bare and instrumented epochs.

    python -m bench_support.overhead [--model resnet18] [--pairs 10] [--data-dir data]

Each pair runs the same model, loader and batch size once through a bare PyTorch
loop and once through the suite's instrumented epoch inside a memory window (the
sampler thread included), alternating which goes first. Prints the median and
quartiles of the per-pair ratio instrumented/bare.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .data import DatasetSpec, ensure_dataset, image_folders, make_loader
from .memory import MemoryWindow
from .training import bare_epoch, build_model, build_optimizer, train_epoch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--data-dir", default="data")
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
    print(
        f"harness overhead: median {100 * (median - 1):+.2f} % (IQR {100 * (q1 - 1):+.2f} .. {100 * (q3 - 1):+.2f} %), "
        f"{args.pairs} pairs, {args.model} b{args.batch} {args.image_size}px on {torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main()
