"""The instrumented epoch: injected loading delays must show up as fetch stall, steps as compute.

The split is checked on an injected clock that only the fake loading and the fake
steps advance, so the figures are exact and no busy neighbour can move them.
"""

import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_support.workloads.training import TrainingRun, evaluate, summarise, train_epoch


class FakeClock:
    """The epoch's host clock, advanced only by the fake work below: timings are exact."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class SlowDataset(Dataset):
    """Small tensors; each item costs ``delay_s`` to produce: on ``clock`` if given, else a real sleep."""

    def __init__(self, n, delay_s, clock=None):
        self.n, self.delay_s, self.clock = n, delay_s, clock
        self.slept_s = 0.0  # what the real sleeps took (the scheduler may overshoot)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 16, generator=g)
        self.y = torch.randint(0, 4, (n,), generator=g)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.clock is not None:
            self.clock.advance(self.delay_s)
        elif self.delay_s:
            start = time.perf_counter()
            time.sleep(self.delay_s)
            self.slept_s += time.perf_counter() - start
        return self.x[i], self.y[i]


class TimedModel(nn.Module):
    """A small MLP whose every forward pass costs ``step_s`` on the fake clock."""

    def __init__(self, clock, step_s):
        super().__init__()
        self.clock, self.step_s = clock, step_s
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        self.clock.advance(self.step_s)
        return self.net(x)


class ExhaustingLoader:
    """A loader that takes ``exhaust_s`` to notice it is exhausted (workers shutting down)."""

    def __init__(self, loader, clock, exhaust_s):
        self.loader, self.clock, self.exhaust_s = loader, clock, exhaust_s

    def __iter__(self):
        yield from self.loader
        self.clock.advance(self.exhaust_s)


def _fake_epoch(delay_s, step_s, n=48, batch=8, exhaust_s=0.0):
    clock = FakeClock()
    model = TimedModel(clock, step_s)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(SlowDataset(n, delay_s, clock), batch_size=batch, num_workers=0)
    return train_epoch(model, ExhaustingLoader(loader, clock, exhaust_s), opt, torch.device("cpu"), clock=clock)


def test_injected_delay_is_measured_as_fetch_stall_and_compute_as_compute():
    delay, step, n, batch, exhaust = 0.01, 0.003, 48, 8, 0.05
    result = _fake_epoch(delay, step, n, batch, exhaust)
    assert result.samples == n and result.steps == 6
    # Every loading second and the loader's final wait, and nothing else:
    assert result.fetch_stall_s == pytest.approx(delay * n + exhaust, rel=1e-9)
    assert result.compute_s == pytest.approx(step * n / batch, rel=1e-9)  # the steps, and not the loading
    assert result.first_batch_s == pytest.approx(delay * batch, rel=1e-9)
    assert result.epoch_s == pytest.approx(delay * n + exhaust + step * n / batch, rel=1e-9)
    assert result.stall_frac == pytest.approx((delay * n + exhaust) / result.epoch_s)


def test_without_a_delay_there_is_no_stall():
    result = _fake_epoch(0.0, 0.002)
    assert result.fetch_stall_s == 0.0 and result.stall_frac == 0.0
    assert result.compute_s == pytest.approx(0.002 * 6)


def test_real_sleeps_in_the_loader_land_in_the_fetch_stall():
    """The real clock: each sleep lies inside a fetch interval, so the stall holds all of it."""
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    data = SlowDataset(24, 0.005)
    loader = DataLoader(data, batch_size=8, num_workers=0)
    result = train_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.01), torch.device("cpu"))
    assert result.fetch_stall_s >= data.slept_s > 24 * 0.005 * 0.99
    assert result.fetch_stall_s + result.compute_s == pytest.approx(result.epoch_s, rel=1e-9)


def test_summary_means_and_rates():
    results = [_fake_epoch(0.002 * (k + 1), 0.001, n=16, batch=4) for k in range(2)]
    s = summarise(results)
    assert s["epochs_measured"] == 2 and s["samples_measured"] == 32
    assert s["samples_per_s"] == pytest.approx(32 / sum(r.epoch_s for r in results))
    assert s["stall_frac"] == pytest.approx(sum(r.fetch_stall_s for r in results) / sum(r.epoch_s for r in results))
    assert s["compute_timer"] == "host"


def test_training_learns_and_accuracy_is_measured_on_the_held_out_split():
    data = SlowDataset(64, 0.0)
    data.y = (data.x[:, 0] > 0).long()  # a learnable rule
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    run = TrainingRun("resnet18", "adam", loader, loader, num_classes=2)
    run.model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    run.optimizer = torch.optim.Adam(run.model.parameters(), lr=0.01)
    before = evaluate(run.model, loader, run.device)
    for _ in range(15):
        run.epoch()
    figures = run.figures(measured=3)
    assert figures["epochs_measured"] == 3
    assert figures["accuracy"] > max(before, 0.85)
    assert figures["loss"] < run.epochs[0].loss


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
def test_cuda_epoch_uses_events_and_no_per_step_sync():
    model = nn.Linear(16, 4).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(SlowDataset(32, 0.002), batch_size=8)
    result = train_epoch(model, loader, opt, torch.device("cuda"))
    assert result.compute_timer == "cuda-events"
    assert 0 < result.compute_s < result.epoch_s
    assert abs(result.fetch_stall_s - 0.064) / 0.064 < 0.2
