"""DataLoader workers: throughput, stall, CPU and memory of the process tree, threads."""

import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_support.measure.cpu import TreeCpu, cpu_util_pct, usable_cores
from bench_support.measure.memory import MemoryWindow
from bench_support.report import summary
from bench_support.workloads.loading import WorkerThreads, thread_policy
from bench_support.workloads.training import train_epoch

PREP_S = 0.004  # CPU-bound preparation cost per sample (a busy loop: it needs a core)


class BusyDataset(Dataset):
    def __init__(self, n=96):
        self.n = n
        self.x = torch.randn(n, 3, 16, 16)
        self.y = torch.randint(0, 4, (n,))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        end = time.perf_counter() + PREP_S
        while time.perf_counter() < end:
            pass
        return self.x[i], self.y[i]


def _loader(workers, threads=None):
    kwargs = {"persistent_workers": True, "prefetch_factor": 2} if workers else {}
    return DataLoader(BusyDataset(), batch_size=8, num_workers=workers, worker_init_fn=threads, **kwargs)


def _rate(loader):
    for _ in loader:  # start the workers, warm everything
        pass
    start = time.perf_counter()
    samples = sum(y.shape[0] for _ in range(2) for _, y in loader)
    return samples / (time.perf_counter() - start)


needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="needs at least 2 cores")


@needs_two_cores
def test_loader_throughput_rises_with_workers_up_to_the_cores():
    rates = {w: _rate(_loader(w)) for w in (0, 1, 2)}
    assert rates[1] >= 0.8 * rates[0], rates  # one worker does the same work, off the main process
    assert rates[2] > 1.4 * rates[0] and rates[2] > rates[1], rates


class SmallNet(nn.Module):
    """A step costs about what preparing a batch does (~35 ms on one thread here): with
    two workers on two cores, preparation can hide behind compute."""

    def __init__(self, ch=96):
        super().__init__()
        layers = [nn.Conv2d(3, ch, 3, padding=1), nn.ReLU()]
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, 4))

    def forward(self, x):
        return self.body(x)


@needs_two_cores
def test_training_stall_falls_from_zero_to_two_workers():
    fracs = {}
    for workers in (0, 2):
        torch.manual_seed(0)
        model = SmallNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = _loader(workers)
        with thread_policy("reserve", workers):
            train_epoch(model, loader, opt, torch.device("cpu"))  # warm-up: workers start
            fracs[workers] = train_epoch(model, loader, opt, torch.device("cpu")).stall_frac
    assert fracs[2] < 0.6 * fracs[0], fracs


@needs_two_cores
def test_worker_cpu_and_memory_count_in_the_tree():
    threads = WorkerThreads()
    loader = _loader(2, threads)
    figures = {}
    for workers, ldr in ((0, _loader(0)), (2, loader)):
        cpu = TreeCpu()
        with MemoryWindow(interval_s=0.02) as window:
            cpu.start()
            start = time.perf_counter()
            for _ in range(3):
                for _ in ldr:
                    pass
            util = cpu_util_pct(cpu.stop(), time.perf_counter() - start)
        figures[workers] = (util, window.figures["rss_tree_peak_mb"] - window.figures["rss_peak_mb"])
    assert figures[0][0] < 115  # one busy process: about one core
    assert figures[2][0] > 130, figures  # two busy workers: well over one core
    assert figures[2][1] > figures[0][1] + 1.0, figures  # the workers' private pages are counted
    assert threads.read() == 1  # PyTorch runs each worker with one thread


def test_thread_policies():
    before = torch.get_num_threads()
    with thread_policy("reserve", 1) as n:
        assert n == max(1, usable_cores() - 1) == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with thread_policy("default", 4) as n:
        assert n == before
    with pytest.raises(ValueError):
        with thread_policy("greedy", 1):
            pass


def _bench(name, workers, rate, iqr_frac=0.02):
    extra = {
        "measure": "loader",
        "samples_per_s": rate,
        "num_workers": workers,
        "prefetch_factor": 2,
        "pin_memory": False,
        "persistent_workers": False,
    }
    stats = SimpleNamespace(median=1.0, iqr=iqr_frac)
    return SimpleNamespace(name=name, group="dataloader", extra_info=extra, stats=SimpleNamespace(stats=stats))


def test_fastest_loader_names_the_winner_and_the_ties():
    benches = [_bench("w0", 0, 1000.0), _bench("w1", 1, 1900.0), _bench("w2", 2, 2000.0)]
    result = summary.fastest_loader(benches)
    assert result["config"]["num_workers"] == 2 and result["samples_per_s"] == 2000.0
    assert [t["num_workers"] for t in result["tied_within_noise"]] == [1]  # 5 % of 2000
    line = summary.fastest_loader_line(result)
    assert line.startswith("fastest loader here: num_workers=2") and "within noise" in line
    noisy = summary.fastest_loader([_bench("w0", 0, 1000.0), _bench("w2", 2, 1100.0, iqr_frac=0.2)])
    assert [t["num_workers"] for t in noisy["tied_within_noise"]] == [0]
    assert summary.fastest_loader([]) is None
