"""The instrumented epoch: injected loading delays must show up as fetch stall."""

import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_support.training import TrainingRun, evaluate, summarise, train_epoch


class SlowDataset(Dataset):
    """Small tensors; each item costs exactly ``delay_s`` of sleeping to produce."""

    def __init__(self, n, delay_s):
        self.n, self.delay_s = n, delay_s
        self.slept_s = 0.0  # what the sleeps really took (the scheduler may overshoot)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 16, generator=g)
        self.y = torch.randint(0, 4, (n,), generator=g)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.delay_s:
            start = time.perf_counter()
            time.sleep(self.delay_s)
            self.slept_s += time.perf_counter() - start
        return self.x[i], self.y[i]


def _epoch(delay_s, n=48, batch=8, with_data=False):
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = SlowDataset(n, delay_s)
    loader = DataLoader(data, batch_size=batch, num_workers=0)
    train_epoch(model, loader, opt, torch.device("cpu"))  # warm-up (first-call costs)
    data.slept_s = 0.0
    result = train_epoch(model, loader, opt, torch.device("cpu"))
    return (result, data) if with_data else result


def test_injected_delay_is_measured_as_fetch_stall_within_5_percent():
    delay, n = 0.01, 48
    result, data = _epoch(delay, n, with_data=True)
    assert result.samples == n and result.steps == 6
    # Against the time the sleeps really took: what the accounting must recover.
    assert abs(result.fetch_stall_s - data.slept_s) / data.slept_s < 0.05, (result, data.slept_s)
    # Against the nominal delay, leaving room for the scheduler's overshoot on a busy machine.
    injected = delay * n
    assert abs(result.fetch_stall_s - injected) / injected < 0.10, result
    assert result.compute_s < 0.2 * injected  # the sleep is not counted as compute
    assert result.fetch_stall_s + result.compute_s == pytest.approx(result.epoch_s, rel=1e-9)


def test_without_a_delay_the_stall_is_small():
    result = _epoch(0.0)
    assert result.fetch_stall_s < 0.05
    assert result.stall_frac < 0.9


def test_summary_means_and_rates():
    results = [_epoch(0.002, n=16, batch=4) for _ in range(2)]
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
