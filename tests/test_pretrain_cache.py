"""The cached factory checkpoint is used only when intact; otherwise it is made again, and a line says so."""

import json
import os

import pytest
import torch

from bench_support.continual import factory
from bench_support.continual.factory import Pretraining
from bench_support.files import read_json

RECIPE = Pretraining("smallcnn", image_size=32, n_train=4, n_val=4, factory_images=32, epochs=1, seed=0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A pretraining whose worker writes a small real checkpoint; returns (ensure, calls, lines, paths)."""
    calls, lines = [], []

    def fake_worker(mode, config, cwd, on_progress=None):
        calls.append(mode)
        torch.save({"model": {"w": torch.full((64,), float(len(calls)))}, "classes": ["a"]}, config["output"])
        os.chmod(config["output"], 0o600)  # as the real worker's durable write through mkstemp leaves it
        return {"pretrain_s": 1.5, "pretrain_synth_acc": 0.9}

    monkeypatch.setattr(factory, "run_once", fake_worker)
    data_dir = tmp_path / "data"

    def ensure():
        return RECIPE.ensure(str(data_dir), str(tmp_path), lines.append)

    checkpoint = data_dir / "pretrained" / f"{RECIPE.name}.pt"
    sidecar = data_dir / "pretrained" / f"{RECIPE.name}.json"
    return ensure, calls, lines, checkpoint, sidecar


def test_the_sidecar_records_the_checkpoint_size_and_hash(cache):
    ensure, calls, lines, checkpoint, sidecar = cache
    first = ensure()
    recorded = read_json(str(sidecar))
    assert recorded["checkpoint_bytes"] == checkpoint.stat().st_size
    assert recorded["checkpoint_sha256"] == factory.fingerprint(str(checkpoint))["checkpoint_sha256"]
    assert first["pretrain_cached"] is False
    assert checkpoint.stat().st_mode & 0o777 == 0o644  # readable by every user, as the sidecar and the data
    again = ensure()
    assert again["pretrain_cached"] is True and calls == ["pretrain"] and len(lines) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "same-size"])
def test_a_damaged_checkpoint_is_made_again_with_one_line(cache, damage):
    ensure, calls, lines, checkpoint, sidecar = cache
    ensure()
    data = checkpoint.read_bytes()
    if damage == "garbage":
        checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    elif damage == "truncated":
        checkpoint.write_bytes(data[: len(data) // 2])
    else:  # one flipped byte: loads perhaps, but it is not what was trained
        checkpoint.write_bytes(data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:])
    size = checkpoint.stat().st_size
    lines.clear()
    again = ensure()
    assert calls == ["pretrain", "pretrain"] and again["pretrain_cached"] is False
    why = "its SHA-256 differs from the one recorded" if size == len(data) else f"{size} bytes, {len(data)} recorded"
    assert lines[0] == f"pretrained checkpoint {checkpoint} is damaged ({why}); pretraining again"
    assert len(lines) == 2 and lines[1].startswith("pretraining smallcnn")
    torch.load(str(checkpoint), weights_only=True)  # what the worker will do: it loads
    assert ensure()["pretrain_cached"] is True and len(calls) == 2


@pytest.mark.parametrize("sidecar_state", ["torn", "missing"])
def test_a_checkpoint_without_an_intact_sidecar_is_made_again(cache, sidecar_state):
    ensure, calls, lines, checkpoint, sidecar = cache
    ensure()
    if sidecar_state == "torn":
        sidecar.write_text(sidecar.read_text()[:20])
    else:
        sidecar.unlink()
    lines.clear()
    assert ensure()["pretrain_cached"] is False and len(calls) == 2
    assert lines[0] == (
        f"pretrained checkpoint {checkpoint} has no intact sidecar ({sidecar.name} is {sidecar_state}); "
        "pretraining again"
    )
    assert read_json(str(sidecar))["pretrain_synth_acc"] == 0.9


def _older_sidecar(sidecar):
    info = read_json(str(sidecar))
    del info["checkpoint_bytes"], info["checkpoint_sha256"]
    sidecar.write_text(json.dumps(info))


def test_an_older_sidecar_is_completed_when_its_checkpoint_loads(cache):
    ensure, calls, lines, checkpoint, sidecar = cache
    ensure()
    complete = read_json(str(sidecar))
    _older_sidecar(sidecar)
    lines.clear()
    assert ensure()["pretrain_cached"] is True and calls == ["pretrain"] and lines == []
    assert read_json(str(sidecar)) == complete


def test_an_older_sidecar_with_a_checkpoint_that_does_not_load_is_made_again(cache):
    ensure, calls, lines, checkpoint, sidecar = cache
    ensure()
    _older_sidecar(sidecar)
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    lines.clear()
    assert ensure()["pretrain_cached"] is False and len(calls) == 2
    assert lines[0].startswith(f"pretrained checkpoint {checkpoint} is damaged (it does not load: ")
    assert lines[0].endswith("); pretraining again") and "\n" not in lines[0]
    assert os.path.getsize(checkpoint) == len(data)
