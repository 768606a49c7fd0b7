"""The instrumented epoch: injected loading delays must show up as fetch stall, steps as compute;
the one training step that every training workload runs.

The split is checked on an injected clock that only the fake loading and the fake
steps advance, so the figures are exact and no busy neighbour can move them.
"""

import contextlib
import time
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_support.workloads import distributed_rank, training
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


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def test_one_step_changes_the_parameters_and_lowers_the_loss_on_its_batch():
    model, opt = _tiny()
    data = SlowDataset(32, 0.0)
    before = [p.detach().clone() for p in model.parameters()]
    first = training.train_step(model, data.x, data.y, nn.CrossEntropyLoss(), opt)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    with torch.no_grad():
        after = nn.CrossEntropyLoss()(model(data.x), data.y)
    assert after < first.detach()


def test_an_accumulating_step_adds_its_gradients_and_the_updating_one_spends_them():
    model, opt = _tiny()
    data, loss_fn = SlowDataset(8, 0.0), nn.CrossEntropyLoss()
    weights = model[0].weight.detach().clone()
    training.train_step(model, data.x, data.y, loss_fn, opt, accumulate=True, update=False)
    once = model[0].weight.grad.clone()
    assert torch.equal(model[0].weight, weights)  # no optimizer step
    training.train_step(model, data.x, data.y, loss_fn, opt, accumulate=True, update=False)
    assert torch.allclose(model[0].weight.grad, 2 * once)
    training.train_step(model, data.x, data.y, loss_fn, opt, accumulate=True)
    assert model[0].weight.grad is None and not torch.equal(model[0].weight, weights)


class _DDPLike(nn.Module):
    """What the rank's epoch and probe use of DistributedDataParallel: forward, train(), no_sync()."""

    def __init__(self, module):
        super().__init__()
        self.module, self.unsynced = module, 0

    def forward(self, x):
        return self.module(x)

    @contextlib.contextmanager
    def no_sync(self):
        self.unsynced += 1
        yield


def _rank_without_a_process_group(loader):
    """A Rank's state as its ``__init__`` leaves it, on the CPU, with a stand-in for the process group."""
    model, opt = _tiny()
    rank = distributed_rank.Rank.__new__(distributed_rank.Rank)
    rank.torch, rank.dist = torch, types.SimpleNamespace(barrier=lambda: None)
    rank.config, rank.rank, rank.world, rank.device = {}, 0, 1, torch.device("cpu")
    rank.sampler, rank.loader = types.SimpleNamespace(set_epoch=lambda epoch: None), loader
    rank.model, rank.optimizer, rank.loss_fn = _DDPLike(model), opt, nn.CrossEntropyLoss()
    rank.comm, rank.epochs, rank.last = distributed_rank.CommStats(), 0, {}
    return rank


def test_every_training_path_runs_the_one_step(monkeypatch):
    """The instrumented epoch, the bare one, a rank's epoch and its probe: each step is train_step."""
    calls = []
    real = training.train_step

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", counting)
    loader = DataLoader(SlowDataset(24, 0.0), batch_size=8)  # 3 steps an epoch
    model, opt = _tiny()
    assert train_epoch(model, loader, opt, torch.device("cpu")).steps == 3 and len(calls) == 3
    training.bare_epoch(model, loader, opt, torch.device("cpu"))
    assert len(calls) == 6

    rank = _rank_without_a_process_group(loader)
    calls.clear()
    rank.epoch()
    assert len(calls) == 3 and rank.last["steps"] == 3
    calls.clear()
    figures = rank.probe()
    pairs = distributed_rank.PROBE_PAIRS
    assert len(calls) == 2 * pairs and figures["pairs"] == pairs
    assert [c["no_sync"] for c in calls] == [True, False] * pairs  # no_sync, then sync, in each pair
    assert [c["update"] for c in calls] == [False, True] * pairs  # only the sync step steps the optimizer
    assert rank.model.unsynced == pairs
    assert figures["step_ms_sync"] >= figures["backward_ms_sync"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
def test_cuda_epoch_uses_events_and_no_per_step_sync():
    model = nn.Linear(16, 4).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(SlowDataset(32, 0.002), batch_size=8)
    result = train_epoch(model, loader, opt, torch.device("cuda"))
    assert result.compute_timer == "cuda-events"
    assert 0 < result.compute_s < result.epoch_s
    assert abs(result.fetch_stall_s - 0.064) / 0.064 < 0.2
