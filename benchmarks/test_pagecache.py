"""Reading the training dataset cold and warm, and a training run that starts cold.

Before every round, untimed, the dataset's files are put into the round's cache state
and that state is *measured* (mincore): a cold round starts with <= 1 % of the bytes
cached, a warm one with >= 99 %, or the benchmark is skipped with the reason. The
device's /proc/diskstats counters and this process's read_bytes bracket each round.
``raw`` reads the files' bytes; ``decoded`` reads them through the DataLoader with
JPEG decoding and the training transforms, which shows how much of the cold penalty
decoding hides.
"""

import os
import statistics

import pytest

from bench_support import pagecache
from bench_support.data import make_loader
from bench_support.diskio import diskstats_name, io_figures, io_snapshot, storage_of
from bench_support.machine import memory_facts
from bench_support.memory import MB
from bench_support.profiles import parametrize_grid
from bench_support.training import TrainingRun

pytestmark = pytest.mark.benchmark(group="pagecache")

GRID = {
    "smoke": {"cache_state": ["cold", "warm"], "reader": ["raw"], "image_size": [32], "data_root": ["data-dir"]},
    "quick": {
        "cache_state": ["cold", "warm"],
        "reader": ["raw", "decoded"],
        "image_size": [32],
        "data_root": ["data-dir"],
    },
    "full": {
        "cache_state": ["cold", "warm"],
        "reader": ["raw", "decoded"],
        "image_size": [32, 128],
        "data_root": ["data-dir"],
    },
}
ROUNDS = {"smoke": 1, "quick": 5, "full": 10}
COLD_START = {"smoke": (1, 1), "quick": (2, 3), "full": (3, 5)}  # (cold epochs, warm epochs after them)
IO_KEYS = ("disk_read_mb", "disk_reads", "read_iops", "disk_read_mb_per_s", "r_await_ms", "util_pct", "proc_read_mb")


def pytest_generate_tests(metafunc):
    user_roots = [value.partition("=")[0] for value in metafunc.config.getoption("data_root")]
    parametrize_grid(metafunc, GRID, extra={"data_root": user_roots})


class StorageContext:
    """Where the files are, how they can be made cold, and their device's counters."""

    def __init__(self, directory, paths, cache_state, requested_method):
        self.paths = paths
        self.storage = storage_of(directory)
        self.fs_type = self.storage["fs_type"]
        self.method = None
        try:
            self.method = pagecache.choose_method(requested_method, self.fs_type)
        except pagecache.EvictionUnavailable as exc:
            if cache_state == "cold":
                pytest.skip(str(exc))
        self.rounds = []  # one dict of figures per measured round
        self._before = None

    def prepare(self, cache_state):
        try:
            found = pagecache.prepare(self.paths, cache_state, self.method)
        except (pagecache.EvictionUnavailable, pagecache.ResidencyUnknown) as exc:
            pytest.skip(str(exc))
        self._before = (found, io_snapshot(diskstats_name(self.storage)))

    def finish_round(self, seconds):
        found, snapshot = self._before
        figures = io_figures(snapshot, io_snapshot(diskstats_name(self.storage)))
        figures.update(resident_frac_before=found.frac, seconds=seconds)
        self.rounds.append(figures)

    def summary(self, measured, cache_state):
        rounds = self.rounds[-measured:]
        fracs = [r["resident_frac_before"] for r in rounds]
        info = {
            # The claim must hold for every round: the worst one is reported.
            "resident_frac_before": max(fracs) if cache_state == "cold" else min(fracs),
            "resident_frac_before_rounds": fracs,
            "eviction_method": self.method if cache_state == "cold" else None,
            "page_size": pagecache.PAGE_SIZE,
        }
        info.update(self.storage)
        if self.storage.get("block_device") is None:
            info["io_unavailable"] = self.storage.get("block_device_unavailable")
        for key in IO_KEYS:
            values = [r[key] for r in rounds if r.get(key) is not None]
            info[key] = statistics.median(values) if values else None
        if info.get("disk_reads") == 0:
            info["r_await_note"] = "no reads reached the device"
        return info


def _image_files(image_datasets, image_size, data_root):
    train, val, info = image_datasets(image_size, data_root)
    paths = [path for path, _ in train.samples] if hasattr(train, "samples") else None
    if not paths:
        pytest.skip("the page-cache benchmarks read generated image files (CIFAR-10 is one pickled file per batch)")
    return train, val, info, paths


@pytest.fixture
def dataset(image_datasets, image_size, data_root):
    return _image_files(image_datasets, image_size, data_root)


def test_read(harness, profile, pytestconfig, dataset, cache_state, reader, image_size, data_root):
    train, _, info, paths = dataset
    storage = StorageContext(info["dataset_dir"], paths, cache_state, pytestconfig.getoption("cache_drop"))
    mem_available = memory_facts().get("available_mb")
    loader = make_loader(train, 16, shuffle=False) if reader == "decoded" else None
    clock = {}

    def setup():
        storage.prepare(cache_state)
        clock["start"] = _now()

    def read():
        if loader is None:
            pagecache.read_all(paths)
        else:
            for _ in loader:
                pass

    def teardown():
        storage.finish_round(_now() - clock["start"])

    harness.run(read, rounds=ROUNDS[profile.name], setup=setup, teardown=teardown)

    extra = harness.extra_info
    extra.update(storage.summary(harness.measured_rounds, cache_state))
    read_bytes = sum(os.path.getsize(p) for p in paths)
    seconds = statistics.median(r["seconds"] for r in storage.rounds[-harness.measured_rounds :])
    extra.update(
        cache_state=cache_state,
        reader=reader,
        files=len(paths),
        read_mb=read_bytes / MB,
        read_pages_mb=pagecache.page_rounded_bytes(paths) / MB,
        read_mb_per_s=read_bytes / MB / seconds,
        mem_available_mb_at_start=mem_available,
        dataset=info["dataset"],
        dataset_mb=info.get("dataset_mb"),
        data_root=data_root,
    )
    if extra.get("disk_read_mb") is not None and read_bytes:
        extra["read_amplification"] = extra["disk_read_mb"] / extra["read_mb"]


def _now():
    import time

    return time.perf_counter()


def test_training_cold_start(harness, profile, pytestconfig, image_datasets, data_root):
    """Epoch 0 cold, the following epochs warm (the study's protocol), side by side.

    mobilenet_v3_small, batch 16, SGD, 32 px, no workers: one round is one cold epoch
    (the data evicted and verified before it); the warm epochs follow it untimed by
    pytest-benchmark, each timed by the training loop after its residency is checked.
    """
    train, val, info, paths = _image_files(image_datasets, 32, data_root)
    storage = StorageContext(info["dataset_dir"], paths, "cold", pytestconfig.getoption("cache_drop"))
    run = TrainingRun(
        "mobilenet_v3_small",
        "sgd",
        make_loader(train, 16),
        make_loader(val, 64, shuffle=False),
        num_classes=info["num_classes"],
    )
    cold_rounds, warm_epochs = COLD_START[profile.name]

    def setup():
        storage.prepare("cold")
        clock["start"] = _now()

    def teardown():
        storage.finish_round(_now() - clock["start"])

    clock = {}
    harness.run(run.epoch, rounds=cold_rounds, setup=setup, teardown=teardown)
    cold = run.epochs[-harness.measured_rounds :]
    cold_info = storage.summary(harness.measured_rounds, "cold")

    warm_fracs = []
    for _ in range(warm_epochs):  # the data is now in the cache: verify, then train on
        warm_fracs.append(pagecache.residency(paths).frac)
        run.epoch()
    warm = run.epochs[-warm_epochs:]

    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    extra = harness.extra_info
    extra.update(cold_info)
    extra.update(
        cold_epoch_s=mean(e.epoch_s for e in cold),
        warm_epoch_s=mean(e.epoch_s for e in warm),
        cold_fetch_stall_s=mean(e.fetch_stall_s for e in cold),
        warm_fetch_stall_s=mean(e.fetch_stall_s for e in warm),
        warm_resident_frac_before=min(warm_fracs),
        cold_epochs=len(cold),
        warm_epochs=len(warm),
        data_root=data_root,
        dataset=info["dataset"],
    )
    extra["cold_penalty_s"] = extra["cold_epoch_s"] - extra["warm_epoch_s"]
