"""Continual learning: photo checks, split, worker memory, outputs, and the scenario end to end."""

import csv
import glob
import json
import os
import re
import resource
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_support import cl_outputs, photos
from bench_support.cl_worker import through_shell
from bench_support.standin import render_photo
from conftest import run_pytest


def _photo(path, label="orange_square", seed=0):
    render_photo(label, np.random.default_rng(seed)).save(path, format="JPEG", quality=80)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("orange_square_01.jpg", "orange_square"),
        ("Orange_Square_02.JPG", "orange_square"),
        ("blue_circle_2026-11-22_home.png", "blue_circle"),
        ("IMG_1234.jpg", None),  # a camera's name: two tokens only
        ("orange-square-01.jpg", None),
        ("orange_square_01.txt", None),
        ("_square_01.jpg", None),
    ],
)
def test_class_is_the_first_two_tokens(name, expected):
    assert photos.class_of(name) == expected


def test_bad_photo_folder_names_every_unusable_file(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
        _photo(tmp_path / f"blue_circle_{i}.jpg", "blue_circle", 10 + i)
    _photo(tmp_path / "IMG_1234.jpg")  # misnamed
    (tmp_path / "orange_square_empty.jpg").write_bytes(b"")  # zero bytes
    good = (tmp_path / "orange_square_0.jpg").read_bytes()
    (tmp_path / "blue_circle_torn.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (tmp_path / "blue_circle_junk.jpg").write_bytes(b"not a jpeg at all" * 10)
    _photo(tmp_path / "purple_star_01.jpg")  # a one-photo class
    (tmp_path / ".DS_Store").write_bytes(b"x")  # hidden: ignored silently

    found = photos.scan(str(tmp_path))
    problems = dict(found.problems)
    assert set(problems) == {
        "IMG_1234.jpg",
        "orange_square_empty.jpg",
        "blue_circle_torn.jpg",
        "blue_circle_junk.jpg",
        "purple_star_01.jpg",
    }
    assert "0 bytes" in problems["orange_square_empty.jpg"]
    assert "not a readable image" in problems["blue_circle_torn.jpg"]
    assert "has 1 usable photo" in problems["purple_star_01.jpg"]
    line = found.problem_line()
    assert "\n" not in line and "<word>_<word>_<anything>.jpg" in line
    assert found.counts() == {"blue_circle": 3, "orange_square": 3}
    assert found.usable and found.unusable_reason() is None


def test_one_class_is_unusable_with_a_reason(tmp_path):
    for i in range(4):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
    found = photos.scan(str(tmp_path))
    assert not found.usable
    assert "at least 2 classes" in found.unusable_reason() and "orange_square (4)" in found.unusable_reason()


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a_b", "c_d", "e_f", "g_h"]), st.integers(3, 40), min_size=1), st.integers(0, 9)
)
def test_stratified_split_keeps_every_class_on_both_sides(sizes, seed):
    items = [(f"/p/{label}_{i}.jpg", label) for label, n in sizes.items() for i in range(n)]
    train, held = photos.stratified_split(items, seed)
    assert sorted(train + held) == sorted(items) and not set(train) & set(held)
    for label, n in sizes.items():
        k = sum(1 for _, c in held if c == label)
        assert k == photos.holdout_count(n) and k >= 1 and n - k >= 2
        assert k >= round(n * photos.HOLDOUT_FRAC) - 1
    assert photos.stratified_split(items, seed) == (train, held)  # deterministic


def test_worker_ru_maxrss_is_its_own_not_the_parents():
    """exec copies the replaced image's peak into ru_maxrss; the shell launch must avoid it."""
    ballast = np.ones(300 * 2**20 // 8)  # this process: > 300 MB resident
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 300 * 1024
    code = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    direct = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
    shelled = int(subprocess.run(through_shell([sys.executable, "-c", code]), capture_output=True, text=True).stdout)
    del ballast
    assert direct > 300 * 1024  # the kernel behaviour the launcher works around
    assert shelled < 100 * 1024


def test_head_only_trains_the_head_alone():
    from bench_support.continual import head_of, prepare_finetune, replace_final_layer
    from bench_support.training import build_model

    model = build_model("mobilenet_v3_small", 4)
    params = prepare_finetune(model, "head")
    assert {id(p) for p in params} == {id(p) for p in head_of(model).parameters()}
    replace_final_layer(model, 7)
    assert head_of(model)[-1].out_features == 7
    whole = build_model("resnet18", 4)
    assert len(prepare_finetune(whole, "whole")) == len(list(whole.parameters()))
    replace_final_layer(whole, 3)
    assert whole.fc.out_features == 3


def test_epoch_line_has_the_seed_format():
    row = {
        "epoch": 2,
        "acc": 0.875,
        "time_s": 3.21,
        "mem_peak_abs_mb": 612.4,
        "mem_delta_mb": 85.0,
        "mem_now_mb": 598.1,
        "synth_acc": None,
        "ckpt": {"ext4": {"ms": 45.25}, "tmpfs": {"ms": None, "error": "no space"}},
    }
    line = cl_outputs.epoch_line(row, ["ext4", "tmpfs"])
    assert line == "epoch 2: acc=0.875 time=3.21s peak=612.4MB delta=85.0MB now=598.1MB ext4=45.2ms tmpfs=failed"


def _bad_photo_folder(root):
    for label, base in (("orange_square", 0), ("blue_circle", 20)):
        for i in range(4):
            _photo(root / f"{label}_{i:02d}.jpg", label, base + i)
    _photo(root / "holiday.jpg")
    (root / "blue_circle_zero.jpg").write_bytes(b"")
    good = (root / "blue_circle_00.jpg").read_bytes()
    (root / "orange_square_torn.jpg").write_bytes(good[:300])
    _photo(root / "blue_square_01.jpg", "blue_square")


def test_scenario_end_to_end_outputs_match_json(tmp_path, shared_data_dir):
    """Bad photos named, live epoch lines, CSV and plots equal to the saved JSON, and the
    lean configuration measured leaner than the seed's in the same run."""
    real = tmp_path / "photos"
    real.mkdir()
    _bad_photo_folder(real)
    results = tmp_path / "results"
    result = run_pytest(
        "benchmarks/test_continual.py",
        "--profile", "quick", "--cl-epochs", "2", "-k", "whole-adam or head-sgd",
        "--data-dir", shared_data_dir, "--data-real", str(real), "--save-results", str(results),
        "--rss-budget-mb", "100000",
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    for name in ("holiday.jpg", "blue_circle_zero.jpg", "orange_square_torn.jpg", "blue_square_01.jpg"):
        assert name in out
    epoch_lines = re.findall(r"^epoch [12]: acc=\S+ time=\S+s peak=\S+MB delta=\S+MB now=\S+MB (\S+)=\S+ms", out, re.M)
    assert len(epoch_lines) == 4  # 2 configurations x 2 epochs, shown without -s

    saved = glob.glob(str(results / "*" / "*" / "0001_quick.json"))
    assert len(saved) == 1
    with open(saved[0]) as fh:
        data = json.load(fh)
    benches = {b["param"]: b for b in data["benchmarks"]}
    assert set(benches) == {"whole-adam", "head-sgd"}
    outputs = data["edge_bench"]["continual"]["outputs"]
    assert outputs["directory"].endswith(os.path.join("continual", "0001_quick"))
    assert len(outputs["plots"]) == 5 and all(os.path.getsize(p) > 1000 for p in outputs["plots"])
    with open(outputs["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    disk = [k for k in rows[0] if k.endswith("_ms") and k != "tmpfs_ms"]
    for row in rows:
        epoch = benches[row["config"]]["extra_info"]["epochs"][int(row["epoch"]) - 1]
        for key in ("acc", "time_s", "mem_peak_abs_mb", "mem_delta_mb", "mem_now_mb"):
            assert float(row[key]) == pytest.approx(epoch[key])
        assert float(row[disk[0]]) == pytest.approx(epoch["ckpt"][disk[0][:-3]]["ms"])
    info = {k: b["extra_info"] for k, b in benches.items()}
    assert info["whole-adam"]["photos"]["source"] == "user"
    assert len(info["whole-adam"]["photos"]["skipped"]) == 4
    assert info["whole-adam"]["within_budget"] is True
    assert info["head-sgd"]["mem_delta_mb"] < info["whole-adam"]["mem_delta_mb"]
    # ru_maxrss of the worker agrees with its VmHWM: no inherited peak.
    for epoch in info["whole-adam"]["epochs"]:
        assert epoch["mem_peak_abs_mb"] == pytest.approx(epoch["mem_hwm_mb"], rel=0.02)


def test_standin_accuracy_with_the_seed_defaults(tmp_path, shared_data_dir):
    """The issue's bar: stand-in photos, image 128, batch 4, 4 epochs, Adam, whole network:
    held-out accuracy >= 0.85 and the 4 epochs under 60 s (shares the end-to-end test's
    cached pretraining, else pretrains: ~1 minute)."""
    empty = tmp_path / "no-photos"
    empty.mkdir()
    results = tmp_path / "results"
    result = run_pytest(
        "benchmarks/test_continual.py", "--profile", "quick", "-k", "whole-adam",
        "--data-dir", shared_data_dir, "--data-real", str(empty), "--save-results", str(results),
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    (saved,) = glob.glob(str(results / "*" / "*" / "0001_quick.json"))
    with open(saved) as fh:
        (bench,) = json.load(fh)["benchmarks"]
    info = bench["extra_info"]
    assert info["photos"]["source"] == "stand-in" and info["photos"]["held_out_photos"] == 16
    assert [e["epoch"] for e in info["epochs"]] == [1, 2, 3, 4]
    assert info["final_acc"] >= 0.85, info["epochs"]
    assert info["finetune_s"] < 60
    assert info["pretraining"]["pretrain_synth_acc"] >= 0.85


def test_smallcnn_head_and_learning_rates():
    import torch

    from bench_support.continual import (
        BACKBONE_LR_SCALE,
        FINETUNE_LR,
        SmallCNN,
        build_optimizer,
        head_of,
        param_groups,
        prepare_finetune,
        replace_final_layer,
    )

    model = SmallCNN(4)
    assert 300_000 < sum(p.numel() for p in model.parameters()) < 450_000
    for size in (64, 128, 97):  # global max pooling: any input size
        assert tuple(model(torch.zeros(2, 3, size, size)).shape) == (2, 4)
    whole = build_optimizer("adam", param_groups(model, prepare_finetune(model, "whole")))
    rates = sorted(g["lr"] for g in whole.param_groups)
    assert rates == [FINETUNE_LR * BACKBONE_LR_SCALE, FINETUNE_LR]
    assert whole.param_groups[0]["params"] == list(head_of(model).parameters())
    head = build_optimizer("sgd", param_groups(model, prepare_finetune(model, "head")))
    assert [g["lr"] for g in head.param_groups] == [FINETUNE_LR]
    replace_final_layer(model, 6)
    assert tuple(model(torch.zeros(1, 3, 64, 64)).shape) == (1, 6)


def test_photometric_augment_is_seeded_and_keeps_the_shape():
    import torch

    from bench_support.continual import factory_images, photometric_augment

    images, labels = factory_images(8, 32, seed=5)
    again, _ = factory_images(8, 32, seed=5)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (8, 3, 32, 32)
    assert torch.equal(images, again) and labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    a = photometric_augment(images, torch.Generator().manual_seed(1))
    b = photometric_augment(images, torch.Generator().manual_seed(1))
    c = photometric_augment(images, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float32 and a.shape == images.shape


def test_smallcnn_with_imagenet_weights_is_one_line():
    result = run_pytest("benchmarks", "--collect-only", "-q", "--cl-weights", "imagenet")
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert "smallcnn has no ImageNet weights" in result.stderr


def test_data_real_that_does_not_exist_is_one_line(tmp_path):
    result = run_pytest("benchmarks", "--collect-only", "-q", "--data-real", str(tmp_path / "nope"))
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert f"--data-real {tmp_path / 'nope'}: no such directory" in result.stderr


def test_imagenet_weights_load_from_the_cache_only(tmp_path, monkeypatch):
    import torch

    from bench_support.continual import imagenet_weights_path, load_imagenet_backbone
    from bench_support.training import build_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, name = imagenet_weights_path("mobilenet_v3_small")
    assert path == str(tmp_path / "hub" / "checkpoints" / name)
    torch.manual_seed(1)
    imagenet = build_model("mobilenet_v3_small", 1000)  # stands in for the real file: same keys and shapes
    os.makedirs(os.path.dirname(path))
    torch.save(imagenet.state_dict(), path)
    model = build_model("mobilenet_v3_small", 4)
    final_before = model.classifier[-1].weight.clone()
    loaded = load_imagenet_backbone(model, path)
    assert loaded == len(imagenet.state_dict()) - 2  # all but the 1000-class layer's weight and bias
    assert torch.equal(model.features[0][0].weight, imagenet.features[0][0].weight)
    assert torch.equal(model.classifier[-1].weight, final_before)


def test_imagenet_weights_missing_is_one_line(tmp_path):
    result = run_pytest(
        "benchmarks", "--collect-only", "-q", "--cl-model", "mobilenet_v3_small", "--cl-weights", "imagenet",
        env={"TORCH_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert "--cl-weights imagenet: mobilenet_v3_small-" in result.stderr
    assert "the suite never downloads" in result.stderr
