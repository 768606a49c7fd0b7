"""DataLoader workers: throughput, stall, CPU and memory of the process tree, threads."""

import time
from types import SimpleNamespace

import psutil
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_support.measure.cpu import TreeCpu, cpu_util_pct, usable_cores
from bench_support.measure.memory import MemoryWindow
from bench_support.report import summary
from bench_support.workloads.loading import WorkerThreads, thread_policy
from bench_support.workloads.training import train_epoch

PREP_S = 0.005  # per sample: a sleep (waiting on storage), which a busy neighbour cannot stretch much
BURN_CPU_S = 0.004  # per sample: CPU time, counted on the process's own CPU clock (not the wall clock)


class SleepyDataset(Dataset):
    """Each sample waits ``PREP_S`` (as a read from slow storage does); ``burn`` spends CPU time instead."""

    def __init__(self, n=96, burn=False):
        self.n, self.burn = n, burn
        self.x = torch.randn(n, 3, 16, 16)
        self.y = torch.randint(0, 4, (n,))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.burn:
            end = time.process_time() + BURN_CPU_S
            while time.process_time() < end:
                pass
        else:
            time.sleep(PREP_S)
        return self.x[i], self.y[i]


def _loader(workers, threads=None, burn=False):
    kwargs = {"persistent_workers": True, "prefetch_factor": 2} if workers else {}
    return DataLoader(SleepyDataset(burn=burn), batch_size=8, num_workers=workers, worker_init_fn=threads, **kwargs)


def _rate(loader):
    for _ in loader:  # start the workers, warm everything
        pass
    start = time.perf_counter()
    samples = sum(y.shape[0] for _ in range(2) for _, y in loader)
    return samples / (time.perf_counter() - start)


def test_workers_overlap_the_loading():
    """Two workers wait for two samples at once: about twice the rate of loading in the main process.
    The waits are sleeps, so the margin holds on a machine whose cores are busy with other work."""
    rates = {w: _rate(_loader(w)) for w in (0, 2)}
    assert rates[2] > 1.4 * rates[0], rates


class SleepyNet(nn.Module):
    """A step takes ``STEP_S`` (a sleep): longer than one worker needs for a batch, so two workers
    hide the loading behind it."""

    STEP_S = 0.06

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))

    def forward(self, x):
        time.sleep(self.STEP_S)
        return self.body(x)


def test_training_stall_falls_from_zero_to_two_workers():
    fracs = {}
    for workers in (0, 2):
        torch.manual_seed(0)
        model = SleepyNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = _loader(workers)
        train_epoch(model, loader, opt, torch.device("cpu"))  # warm-up: workers start
        fracs[workers] = train_epoch(model, loader, opt, torch.device("cpu")).stall_frac
    # Without workers every batch's 40 ms of loading is stall (0.4 of a step); with two, only the first.
    assert fracs[0] > 0.3 and fracs[2] < 0.6 * fracs[0], fracs


def test_worker_cpu_and_memory_count_in_the_tree():
    """The CPU time the workers spend (a fixed amount of CPU, whatever the load) is counted in the
    process tree's CPU, not in the main process's; their private pages in the tree's peak."""
    threads = WorkerThreads()
    figures = {}
    for workers in (0, 2):
        loader = _loader(workers, threads if workers else None, burn=True)
        cpu = TreeCpu()
        with MemoryWindow(interval_s=0.02) as window:
            main_before = time.process_time()
            cpu.start()
            for _ in range(2):
                for _ in loader:
                    pass
            tree_s = cpu.stop()
            main_s = time.process_time() - main_before
        figures[workers] = (tree_s, main_s, window.figures["rss_tree_peak_mb"] - window.figures["rss_peak_mb"])
    burnt = 2 * 96 * BURN_CPU_S  # two passes of 96 samples
    assert figures[0][0] >= 0.95 * burnt and figures[0][1] >= 0.95 * burnt, figures  # all in the main process
    # With workers, their CPU time comes on top of what the main process itself used (collating, IPC):
    assert figures[2][0] >= figures[2][1] + 0.95 * burnt, figures
    assert figures[2][2] > figures[0][2] + 1.0, figures  # the workers' private pages are counted
    assert threads.read() == 1  # PyTorch runs each worker with one thread
    assert cpu_util_pct(1.5, 1.0) == 150.0 and cpu_util_pct(1.0, 0.0) is None


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


def _bench(name, workers, rate, jitter=0.03):
    """A loader result of 3 trials x 2 rounds whose pass time matches its rate (512 samples per pass)."""
    extra = {
        "measure": "loader",
        "samples_per_s": rate,
        "num_workers": workers,
        "prefetch_factor": 2,
        "pin_memory": False,
        "persistent_workers": False,
        "trial_rounds": [2, 2, 2],
    }
    seconds = 512 / rate
    data = [seconds * (1 + jitter * d) for d in (-1, 0.5, 0, 1, -0.5, 0.2)]
    return SimpleNamespace(name=name, group="dataloader", extra_info=extra, stats=SimpleNamespace(data=data))


def test_fastest_loader_names_the_winner_or_the_tie():
    benches = [_bench("w0", 0, 1000.0), _bench("w1", 1, 1980.0), _bench("w2", 2, 2000.0)]
    result = summary.fastest_loader(benches)
    assert result["config"]["num_workers"] == 2 and result["samples_per_s"] == 2000.0
    assert [t["num_workers"] for t in result["tied"]] == [1]  # 1 % apart, rounds 3 % apart: no clear difference
    line = summary.fastest_loader_line(result)
    assert line.startswith("fastest loader here: no clear winner — num_workers=2") and "ties with num_workers=1" in line
    apart = summary.fastest_loader([_bench("w0", 0, 1000.0), _bench("w2", 2, 1500.0)])
    assert apart["tied"] == [] and apart["runner_up"]["clear"] and apart["runner_up"]["gain"] == pytest.approx(0.5)
    assert "+50% (95 % interval" in summary.fastest_loader_line(apart)
    assert summary.fastest_loader([]) is None


def test_the_process_own_cpu_time_is_counted_when_its_stat_file_says_zero(monkeypatch):
    # qemu-user answers a process's reads of its own /proc/<pid>/stat with zero CPU times (seen in the arm64 root);
    # psutil reads that file. The tree's count must not depend on it.
    zeros = SimpleNamespace(user=0.0, system=0.0, children_user=0.0, children_system=0.0)  # the emulator's answer
    monkeypatch.setattr(psutil.Process, "cpu_times", lambda self: zeros)
    cpu = TreeCpu()
    cpu.start()
    before = time.process_time()
    while time.process_time() - before < 0.3:
        pass
    burnt = time.process_time() - before
    assert cpu.stop() >= 0.9 * burnt - 0.02, burnt  # clock ticks: 10 ms each
