"""DataLoader configurations, and where the stall comes from.

``test_loader_pass``: one round is one full pass of the loader over the training split
(decode + the training transforms + collate), nothing else — the loader's own rate.
``test_loader_training``: one round is one training epoch through that loader, so the
stall is seen against real compute. The data is warm (in the page cache) for both.
``test_stall_breakdown``: the data-stall differential method (Mohan et al., VLDB 2021):
the same model trained from synthetic batches already in memory (pure compute), from
the dataset fully cached (adds CPU preparation) and from the dataset cold (adds the
storage fetch). The differences attribute the stall.
"""

import os
import statistics
import time

import pytest
import torch

from bench_support import pagecache
from bench_support.data import make_loader
from bench_support.diskio import storage_of
from bench_support.loading import RoundCpu, WorkerThreads, thread_policy
from bench_support.plugin import require_device
from bench_support.profiles import parametrize_grid
from bench_support.training import TrainingRun, summarise

pytestmark = pytest.mark.benchmark(group="dataloader")

GRID = {
    "smoke": {"num_workers": [0, 1], "prefetch_factor": [2], "pin_memory": [False], "persistent_workers": [False]},
    "quick": {"num_workers": [0, 1, 2], "prefetch_factor": [2], "pin_memory": [False], "persistent_workers": [False]},
    "full": {
        "num_workers": [0, 1, 2, 4],
        "prefetch_factor": [2, 4],
        "pin_memory": [False, True],
        "persistent_workers": [False, True],
    },
}
ROUNDS = {"smoke": (1, 0), "quick": (3, 1), "full": (5, 1)}  # (measured, warm-up) loader passes
EPOCHS = {"smoke": (1, 0), "quick": (2, 1), "full": (5, 1)}  # (measured, warm-up) training epochs
MODEL, OPTIMIZER, BATCH, IMAGE_SIZE = "mobilenet_v3_small", "sgd", 16, 32


def _meaningful(config):
    # Without workers there is nothing to prefetch and nothing to keep alive.
    return config["num_workers"] > 0 or (config["prefetch_factor"] == 2 and not config["persistent_workers"])


def pytest_generate_tests(metafunc):
    parametrize_grid(metafunc, GRID, keep=_meaningful)
    if "data_root" in metafunc.fixturenames and metafunc.function.__name__ == "test_stall_breakdown":
        roots = ["data-dir"] + [v.partition("=")[0] for v in metafunc.config.getoption("data_root")]
        metafunc.parametrize("data_root", roots, ids=[f"on-{r}" for r in roots])


@pytest.fixture
def loader_config(num_workers, prefetch_factor, pin_memory, persistent_workers):
    if pin_memory and not torch.cuda.is_available():
        pytest.skip("pin_memory only matters when batches go to a CUDA device, and none is visible")
    return {
        "num_workers": num_workers,
        "prefetch_factor": prefetch_factor if num_workers else None,
        "pin_memory": pin_memory,
        "persistent_workers": persistent_workers,
    }


def _loader(dataset, config, worker_threads):
    loader = make_loader(dataset, BATCH, **config)
    loader.worker_init_fn = worker_threads
    return loader


def _config_info(config, policy, main_threads, worker_threads):
    return dict(
        config,
        prefetch_factor=config["prefetch_factor"],
        thread_policy=policy,
        torch_threads_main=main_threads,
        torch_threads_worker=worker_threads.read(),
    )


def test_loader_pass(harness, profile, pytestconfig, image_datasets, loader_config):
    train, _, info = image_datasets(IMAGE_SIZE)
    policy = pytestconfig.getoption("thread_policy")
    workers = WorkerThreads()
    loader = _loader(train, loader_config, workers)
    passes = []
    cpu = RoundCpu()

    def one_pass():
        start = time.perf_counter()
        first = None
        samples = 0
        for _, targets in loader:
            if first is None:
                first = time.perf_counter() - start
            samples += targets.shape[0]
        wall = time.perf_counter() - start
        passes.append({"wall": wall, "first": first, "samples": samples})

    rounds, warmup = ROUNDS[profile.name]
    with thread_policy(policy, loader_config["num_workers"]) as main_threads:
        harness.run(one_pass, rounds=rounds, warmup_rounds=warmup, setup=cpu.start, teardown=cpu.stop)

    measured = passes[-harness.measured_rounds :]
    wall = statistics.median(p["wall"] for p in measured)
    data_mb = info.get("dataset_mb", 0) * info["train_samples"] / (info["train_samples"] + info["val_samples"])
    harness.extra_info.update(_config_info(loader_config, policy, main_threads, workers))
    harness.extra_info.update(
        measure="loader",
        samples_per_s=measured[-1]["samples"] / wall,
        mb_per_s=data_mb / wall if data_mb else None,
        first_batch_s=statistics.median(p["first"] for p in measured),
        cpu_util_pct=statistics.median(cpu.util_pct[-harness.measured_rounds :]),
        cores=os.cpu_count(),
        dataset=info["dataset"],
    )


def test_loader_training(harness, profile, pytestconfig, image_datasets, loader_config):
    train, val, info = image_datasets(IMAGE_SIZE)
    policy = pytestconfig.getoption("thread_policy")
    workers = WorkerThreads()
    run = TrainingRun(
        MODEL,
        OPTIMIZER,
        _loader(train, loader_config, workers),
        make_loader(val, 64, shuffle=False),
        num_classes=info["num_classes"],
    )
    cpu = RoundCpu()

    rounds, warmup = EPOCHS[profile.name]
    with thread_policy(policy, loader_config["num_workers"]) as main_threads:
        harness.run(run.epoch, rounds=rounds, warmup_rounds=warmup, setup=cpu.start, teardown=cpu.stop)

    figures = run.figures(harness.measured_rounds)
    harness.extra_info.update(figures)
    harness.extra_info.update(_config_info(loader_config, policy, main_threads, workers))
    harness.extra_info.update(
        measure="training",
        model=MODEL,
        batch=BATCH,
        cpu_util_pct=statistics.median(cpu.util_pct[-harness.measured_rounds :]),
        dataset=info["dataset"],
    )


def test_stall_breakdown(harness, profile, pytestconfig, image_datasets, data_root):
    """Per round: a synthetic and a warm epoch (in the untimed setup, each timed by the
    training loop), then the data is evicted and verified cold, and the cold epoch is
    the timed round. All three epochs train the same model with the same batches' shapes."""
    require_device("cpu")
    train, val, info = image_datasets(IMAGE_SIZE, data_root)
    paths = [p for p, _ in getattr(train, "samples", [])]
    if not paths:
        pytest.skip("the stall breakdown reads generated image files (not CIFAR-10's pickled batches)")
    storage = storage_of(info["dataset_dir"])
    try:
        method = pagecache.choose_method(pytestconfig.getoption("cache_drop"), storage["fs_type"])
    except pagecache.EvictionUnavailable as exc:
        pytest.skip(str(exc))

    real = make_loader(train, BATCH)
    torch.manual_seed(0)
    shapes = [(x.shape, y.shape) for x, y in make_loader(train, BATCH, shuffle=False)]
    synthetic = [(torch.randn(xs), torch.randint(0, info["num_classes"], ys)) for xs, ys in shapes]
    run = TrainingRun(MODEL, OPTIMIZER, real, make_loader(val, 64, shuffle=False), num_classes=info["num_classes"])
    epochs = {"synthetic": [], "warm": [], "cold": []}
    residency = {"warm": [], "cold": []}

    def setup():
        for source, loader in (("synthetic", synthetic), ("warm", real)):
            if source == "warm":
                residency["warm"].append(_verified(paths, "warm", None).frac)
            run.train_loader = loader
            epochs[source].append(run.epoch())
        residency["cold"].append(_verified(paths, "cold", method).frac)
        run.train_loader = real

    def cold_epoch():
        epochs["cold"].append(run.epoch())

    rounds, warmup = ROUNDS[profile.name]
    harness.run(
        cold_epoch, rounds=max(2, rounds - 1) if profile.name != "smoke" else 1, warmup_rounds=warmup, setup=setup
    )

    n = harness.measured_rounds
    summary = {source: summarise(results[-n:]) for source, results in epochs.items()}
    epoch_s = {source: s["epoch_s"] for source, s in summary.items()}
    extra = harness.extra_info
    for source, s in summary.items():
        extra[f"{source}_epoch_s"] = s["epoch_s"]
        extra[f"{source}_samples_per_s"] = s["samples_per_s"]
    extra["compute_samples_per_s"] = summary["synthetic"]["samples_per_s"]
    # A stall cannot be negative: a negative difference is noise, kept visible in *_raw_s.
    extra["prep_stall_raw_s"] = epoch_s["warm"] - epoch_s["synthetic"]
    extra["fetch_stall_raw_s"] = epoch_s["cold"] - epoch_s["warm"]
    extra["prep_stall_s"] = max(0.0, extra["prep_stall_raw_s"])
    extra["fetch_stall_s"] = max(0.0, extra["fetch_stall_raw_s"])
    extra["stall_frac"] = (extra["prep_stall_s"] + extra["fetch_stall_s"]) / epoch_s["cold"]
    extra["resident_frac_before_cold"] = max(residency["cold"][-n:])
    extra["resident_frac_before_warm"] = min(residency["warm"][-n:])
    extra.update(
        storage,
        eviction_method=method,
        data_root=data_root,
        model=MODEL,
        batch=BATCH,
        num_workers=0,
        dataset=info["dataset"],
        dataset_mb=info.get("dataset_mb"),
        samples_per_epoch=len(train),
    )


def _verified(paths, state, method):
    try:
        return pagecache.prepare(paths, state, method)
    except (pagecache.EvictionUnavailable, pagecache.ResidencyUnknown) as exc:
        pytest.skip(str(exc))
