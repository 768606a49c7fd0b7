"""Continual learning: photo checks, split, worker memory, outputs, and the scenario end to end."""

import csv
import glob
import json
import os
import re
import resource
import stat
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_support.continual import outputs as cl_outputs
from bench_support.continual import photos, scenario
from bench_support.continual.factory import PRETRAIN_RECIPE, Pretraining, pretraining_for
from bench_support.continual.standin import ensure_standin, render_photo
from bench_support.continual.worker import WorkerError, through_shell
from bench_support.errors import Unavailable, UserError
from bench_support.files import read_json
from bench_support.profiles import PROFILES
from conftest import make_unwritable, run_pytest

#: The end-to-end runs use the quick profile's shipped factory model: nothing is pretrained in the tests (a factory
#: pretrained here on a quarter of the images cost 40-60 s of CPU in each test process that needed it). Measured with
#: the shipped one, on photos of seeds no constant was tuned on: 0.444-0.500 -> 1.000, new classes 1.000
#: (docs/continual.md); with the weaker quarter-size factory, 6 classes (seed 31415) 0.389 -> 0.778, lift +0.389.
#: The assertions hold for either.


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
        ("röd_fyrkant_01.jpg", "röd_fyrkant"),  # the documented pattern, in any script
        ("ro\u0308d_fyrkant_02.jpg", "röd_fyrkant"),  # the same name decomposed, as macOS writes it
        ("青い_四角_01.png", "青い_四角"),
        ("ＲＥＤ_ｓｔａｒ_０１.jpg", "red_star"),  # full-width, as an East Asian keyboard types it
        ("blue_circle_99\n.jpg", None),  # a control character: "$" would have matched before the newline
        ("blue_circle_99\n", None),
    ],
)
def test_class_is_the_first_two_tokens(name, expected):
    assert photos.class_of(name) == expected


def test_a_skipped_name_with_a_newline_keeps_the_message_on_one_line(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
    _photo(tmp_path / "bad\nname.jpg")
    line = photos.scan(str(tmp_path)).problem_line()
    assert "\n" not in line and "bad\\nname.jpg (name does not match the pattern)" in line


def test_a_fifo_or_a_dangling_link_is_not_a_photo_and_a_long_list_is_cut(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
        _photo(tmp_path / f"blue_circle_{i}.jpg", "blue_circle", 10 + i)
    os.mkfifo(tmp_path / "blue_circle_fifo.jpg")  # opening it to decode would wait for a writer for ever
    os.symlink(tmp_path / "gone.jpg", tmp_path / "blue_circle_gone.jpg")
    for i in range(40):
        (tmp_path / f"IMG_{i:04d}.JPG").write_bytes(b"x")
    found = photos.scan(str(tmp_path))
    problems = dict(found.problems)
    assert problems["blue_circle_fifo.jpg"] == problems["blue_circle_gone.jpg"] == "not a regular file"
    line = found.problem_line()
    assert line.count("IMG_") == photos.LISTED  # sorted first, the first 12 are named
    assert "skipped 42 file(s): " in line and f"; and {42 - photos.LISTED} more (each named in the result's" in line
    assert found.counts() == {"blue_circle": 3, "orange_square": 3}


def test_bad_photo_folder_names_every_unusable_file(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
        _photo(tmp_path / f"blue_circle_{i}.jpg", "blue_circle", 10 + i)
    _photo(tmp_path / "IMG_1234.jpg")  # misnamed
    (tmp_path / "orange_square_empty.jpg").write_bytes(b"")  # zero bytes
    good = (tmp_path / "orange_square_0.jpg").read_bytes()
    (tmp_path / "blue_circle_torn.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (tmp_path / "blue_circle_junk.jpg").write_bytes(b"not a jpeg at all" * 10)
    _photo(tmp_path / "purple_star_01.jpg", seed=42)  # a one-photo class (its own image: a copy is skipped as such)
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


def test_a_copied_photo_is_skipped_and_one_under_two_classes_is_kept_in_neither(tmp_path):
    """A copy in the same class can land in training and in the held-out split at once (the accuracy then measures
    recall of a seen photo); the same image under two classes teaches a contradiction."""
    for i in range(4):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
        _photo(tmp_path / f"blue_circle_{i}.jpg", "blue_circle", 10 + i)
    (tmp_path / "orange_square_copy.jpg").write_bytes((tmp_path / "orange_square_1.jpg").read_bytes())
    os.symlink(tmp_path / "orange_square_2.jpg", tmp_path / "orange_square_link.jpg")
    (tmp_path / "blue_circle_also.jpg").write_bytes((tmp_path / "orange_square_3.jpg").read_bytes())
    found = photos.scan(str(tmp_path))
    problems = dict(found.problems)
    assert problems["orange_square_copy.jpg"] == "a copy of orange_square_1.jpg"
    assert problems["orange_square_link.jpg"] == "a copy of orange_square_2.jpg"
    for name in ("blue_circle_also.jpg", "orange_square_3.jpg"):
        assert problems[name].startswith("the same image under two classes: blue_circle_also.jpg (blue_circle), ")
    assert found.counts() == {"blue_circle": 4, "orange_square": 3}
    assert len(found.items) == len({photos._digest(path) for path, _ in found.items})


def test_the_photo_files_fingerprint_follows_names_and_sizes(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"orange_square_{i}.jpg", "orange_square", i)
    first = photos.files_fingerprint(str(tmp_path))
    assert first.startswith("3 files ") and photos.files_fingerprint(str(tmp_path)) == first
    (tmp_path / ".DS_Store").write_bytes(b"x")  # hidden files are not photos
    assert photos.files_fingerprint(str(tmp_path)) == first
    _photo(tmp_path / "blue_circle_0.jpg", "blue_circle", 7)
    added = photos.files_fingerprint(str(tmp_path))
    assert added.startswith("4 files ") and added != first
    (tmp_path / "blue_circle_0.jpg").unlink()
    _photo(tmp_path / "orange_square_2.jpg", "orange_square", 99)  # same name, another photo: another size
    assert photos.files_fingerprint(str(tmp_path)) not in (first, added)
    assert photos.files_fingerprint(str(tmp_path / "missing")) is None


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
    from bench_support.continual.model import head_of, prepare_finetune, replace_final_layer
    from bench_support.workloads.training import build_model

    model = build_model("mobilenet_v3_small", 4)
    params = prepare_finetune(model, "head")
    assert {id(p) for p in params} == {id(p) for p in head_of(model).parameters()}
    replace_final_layer(model, 7)
    assert head_of(model)[-1].out_features == 7
    whole = build_model("resnet18", 4)
    assert len(prepare_finetune(whole, "whole")) == len(list(whole.parameters()))
    replace_final_layer(whole, 3)
    assert whole.fc.out_features == 3


def test_untimed_evaluation_runs_on_one_thread_and_the_epochs_keep_theirs():
    """The setup before the first epoch (and each epoch's evaluation) runs torch on one thread, so a busy
    neighbour cannot make its operators wait for a descheduled sibling; the count is back, and recorded, after."""
    import torch

    from bench_support.continual import finetune

    seen = []

    class Probe(finetune.FineTune):
        def _setup(self, config):
            seen.append(torch.get_num_threads())
            self.ready = {}

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        probe = Probe({})
        assert seen == [1]
        assert torch.get_num_threads() == 2 and probe.ready["torch_threads"] == 2
        assert probe.ready["mem_baseline_mb"] == pytest.approx(probe.baseline_mb, abs=0.01)
        assert probe.baseline_mb > 0
        with pytest.raises(RuntimeError):
            with finetune.one_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("evaluation failed")
        assert torch.get_num_threads() == 2  # restored on the way out of a failure too
    finally:
        torch.set_num_threads(before)


def test_a_native_thread_pool_keeps_its_count(monkeypatch):
    """torch's native pool (no OpenMP) cannot grow back once started: the untimed work then keeps the count."""
    import torch

    from bench_support.continual import finetune

    monkeypatch.setattr(torch.__config__, "parallel_info", lambda: "ATen parallel backend: native thread pool")
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    with finetune.one_thread():
        pass
    assert calls == []


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
    settings = data["edge_bench"]["settings"]  # which photos ran, for "ran alike": the folder and its files
    assert settings["photos"] == str(real) and settings["photo_files"] == photos.files_fingerprint(str(real))
    outputs = data["edge_bench"]["continual"]["outputs"]
    assert outputs["directory"].endswith(os.path.join("continual", "0001_quick"))
    assert len(outputs["plots"]) == 5 and all(os.path.getsize(p) > 1000 for p in outputs["plots"])
    with open(outputs["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6  # two configurations: epoch 0 (pretrained, as the log shows it) and two epochs each
    disk = [k for k in rows[0] if k.endswith("_ms") and k != "tmpfs_ms"]
    for row in rows:
        if row["epoch"] == "0":
            before = benches[row["config"]]["extra_info"]["before"]
            assert float(row["acc"]) == pytest.approx(before["acc"]) and row["time_s"] == ""
            continue
        epoch = benches[row["config"]]["extra_info"]["epochs"][int(row["epoch"]) - 1]
        for key in ("acc", "time_s", "mem_peak_abs_mb", "mem_delta_mb", "mem_now_mb"):
            assert float(row[key]) == pytest.approx(epoch[key])
        assert float(row[disk[0]]) == pytest.approx(epoch["ckpt"][disk[0][:-3]]["ms"])
    info = {k: b["extra_info"] for k, b in benches.items()}
    assert info["whole-adam"]["photos"]["source"] == "user"
    assert len(info["whole-adam"]["photos"]["skipped"]) == 4
    assert info["whole-adam"]["within_budget"] is True
    assert info["head-sgd"]["mem_delta_mb"] < info["whole-adam"]["mem_delta_mb"]
    # The delta is over VmHWM since the reset before the first step; the lifetime peak is never below it.
    for epoch in info["whole-adam"]["epochs"]:
        assert epoch["mem_delta_mb"] == pytest.approx(
            epoch["mem_hwm_mb"] - info["whole-adam"]["mem_baseline_mb"], abs=0.02
        )
        assert epoch["mem_peak_abs_mb"] >= epoch["mem_hwm_mb"]


def _run_whole_adam(tmp_path, shared_data_dir, folder, *extra):
    results = tmp_path / "results"
    result = run_pytest(
        "benchmarks/test_continual.py", "--profile", "quick", "-k", "whole-adam",
        "--data-dir", shared_data_dir, "--data-real", str(folder), "--save-results", str(results), *extra,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    (saved,) = glob.glob(str(results / "*" / "*" / "0001_quick.json"))
    with open(saved) as fh:
        (bench,) = json.load(fh)["benchmarks"]
    return bench["extra_info"], out


def _photos(folder, classes, seed, per_class=10):
    """Stand-in photos rendered with a seed no recipe constant was tuned on (10 per class, 30 % held out)."""
    from bench_support.continual.standin import write_photos

    folder.mkdir()
    write_photos(str(folder), [(f"{c}_{i + 1:02d}.jpg", c, 1000 + i) for c in classes for i in range(per_class)], seed)


def test_photos_of_new_classes_are_learnt_and_the_lift_over_the_pretrained_model_reported(tmp_path, shared_data_dir):
    """Six classes, two the factory never saw: the pretrained model cannot answer them (0 on their photos);
    imprinted rows and four epochs of whole-network Adam learn them. The pretrained-only score is reported beside
    the fine-tuned one; the lift asserted is far below what either factory reaches (+0.389 with a quarter-size one)."""
    classes = ["blue_circle", "blue_square", "orange_circle", "orange_square", "green_circle", "orange_triangle"]
    _photos(tmp_path / "photos", classes, seed=31415)
    info, out = _run_whole_adam(tmp_path, shared_data_dir, tmp_path / "photos")
    assert info["new_classes"] == ["green_circle", "orange_triangle"]
    assert sorted(info["final_acc_per_class"]) == sorted(classes)
    pretrained = info["before"]["pretrained_acc_per_class"]
    assert pretrained["green_circle"] == 0 and pretrained["orange_triangle"] == 0  # it has no output for them
    assert info["final_acc_new"] > 0 and info["lift"] >= 0.1  # two photos of 18 better than the factory's model
    assert 0 < info["final_acc_ncm"] <= 1 and sorted(info["final_acc_ncm_per_class"]) == sorted(classes)
    assert info["views_per_epoch"] > 1 and info["replay_per_batch"] > 0
    assert info["torchvision_loaded"] is False  # a smallcnn worker imports only what its model needs
    assert info["lift"] == pytest.approx(info["final_acc"] - info["pretrained_acc"], abs=1e-4)
    assert "pretrained model as it came: acc=" in out and "known=" in out and "new=" in out
    print(
        f"6 classes, 2 new: pretrained {info['pretrained_acc']:.3f} -> {info['final_acc']:.3f} "
        f"(nearest mean {info['final_acc_ncm']:.3f}) "
        f"(known {info['final_acc_known']:.3f}, new {info['final_acc_new']:.3f}, lift {info['lift']:+.3f}, "
        f"forgetting {100 * info['forgetting']:+.1f} points) in {info['finetune_s']:.1f} s"
    )


def test_photos_of_the_known_classes_only_forget_little(tmp_path, shared_data_dir):
    """The four factory classes only: the head keeps its four rows; forgetting (synthetic accuracy lost) is
    reported and stays within 5 points for the default whole-network Adam fine-tune (rehearsal keeps it low)."""
    _photos(tmp_path / "photos", ["blue_circle", "blue_square", "orange_circle", "orange_square"], seed=27182)
    # Two epochs, not the profile's four: the path (no new rows, forgetting measured) is the same, in half the time.
    info, _ = _run_whole_adam(tmp_path, shared_data_dir, tmp_path / "photos", "--cl-epochs", "2")
    assert info["new_classes"] == [] and info["final_acc_new"] is None
    assert info["forgetting"] == pytest.approx(
        info["pretraining"]["pretrain_synth_acc"] - info["final_synth_acc"], abs=0.05
    )
    assert info["forgetting"] <= 0.05, info["epochs"]
    assert info["mem_import_mb"] < info["mem_baseline_mb"] <= info["mem_peak_abs_mb"]
    print(f"4 known classes: forgetting {100 * info['forgetting']:+.1f} points, held-out {info['final_acc']:.3f}")


def test_smallcnn_head_and_learning_rates():
    import torch

    from bench_support.continual.model import (
        BACKBONE_LR_SCALE,
        FINETUNE_LR,
        SmallCNN,
        finetune_optimizer,
        head_of,
        param_groups,
        prepare_finetune,
        replace_final_layer,
    )

    model = SmallCNN(4)
    assert 300_000 < sum(p.numel() for p in model.parameters()) < 450_000
    for size in (64, 128, 97):  # global max pooling: any input size
        assert tuple(model(torch.zeros(2, 3, size, size)).shape) == (2, 4)
    whole = finetune_optimizer("adam", param_groups(model, prepare_finetune(model, "whole")))
    rates = sorted(g["lr"] for g in whole.param_groups)
    assert rates == [FINETUNE_LR * BACKBONE_LR_SCALE, FINETUNE_LR]
    assert whole.param_groups[0]["params"] == list(head_of(model).parameters())
    head = finetune_optimizer("sgd", param_groups(model, prepare_finetune(model, "head")))
    assert [g["lr"] for g in head.param_groups] == [FINETUNE_LR]
    with pytest.raises(UserError, match="unknown optimizer 'adamw'; expected adam or sgd"):
        finetune_optimizer("adamw", head.param_groups)
    replace_final_layer(model, 6)
    assert tuple(model(torch.zeros(1, 3, 64, 64)).shape) == (1, 6)


def test_photometric_augment_is_seeded_and_keeps_the_shape():
    import torch

    from bench_support.continual.pretrain import factory_images, photometric_augment

    images, labels = factory_images(20, 32, seed=5)
    again, _ = factory_images(20, 32, seed=5)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (20, 3, 32, 32)
    assert torch.equal(images, again) and labels.tolist() == list(range(16)) + [0, 1, 2, 3]  # the catalogue in turn
    images = images[:8]
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

    from bench_support.continual.model import imagenet_weights_path, load_imagenet_backbone
    from bench_support.workloads.training import build_model

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


# --- the plugin's interface: settings, factory cache, preparation, run and outcome -----------


def _options(**overrides):
    options = {
        "model": "smallcnn",
        "image_size": 128,
        "batch": 4,
        "workers": 0,
        "epochs": None,
        "seed": 0,
        "weights": "synthetic",
        "rss_budget_mb": None,
        "data_real": None,
        "allow_network": False,
        "pretrain_images": None,
    }
    options.update(overrides)
    return options


def test_settings_resolve_the_defaults_and_are_read_only(tmp_path):
    quick = PROFILES["quick"]
    resolved = scenario.settings_from(_options(), quick, str(tmp_path))
    assert set(resolved) == set(_options()) | {"imagenet_path"}
    assert resolved["epochs"] == quick.finetune_epochs
    assert resolved["data_real"] == str(tmp_path / "data_real")  # need not exist: stand-ins then
    assert resolved["imagenet_path"] is None and resolved["allow_network"] is False
    with pytest.raises(TypeError):
        resolved["epochs"] = 9
    _photo(tmp_path / "orange_square_01.jpg")
    given = scenario.settings_from(_options(epochs=2, data_real=str(tmp_path)), PROFILES["smoke"], "/nowhere")
    assert given["epochs"] == 2 and given["data_real"] == str(tmp_path)


def test_settings_errors_are_one_line_user_errors(tmp_path, monkeypatch):
    from bench_support.continual.model import imagenet_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_text("x")  # hidden: no photo
    cases = [
        ({"data_real": str(tmp_path / "nope")}, f"--data-real {tmp_path / 'nope'}: no such directory"),
        ({"data_real": str(tmp_path / "a_file")}, f"--data-real {tmp_path / 'a_file'}: not a directory"),
        ({"data_real": str(tmp_path / "empty")}, f"--data-real {tmp_path / 'empty'}: no files in it; leave the option"),
        ({"weights": "imagenet"}, "--cl-weights imagenet: smallcnn has no ImageNet weights"),
        ({"weights": "imagenet", "model": "mobilenet_v3_small"}, "the suite never downloads"),
    ]
    for overrides, expected in cases:
        with pytest.raises(UserError, match=re.escape(expected)) as info:
            scenario.settings_from(_options(**overrides), PROFILES["quick"], str(tmp_path))
        assert "\n" not in str(info.value)
    unreadable = tmp_path / "locked"
    unreadable.mkdir()
    real_listdir = os.listdir

    def listdir(path="."):  # root reads any folder: a folder it may not read is simulated
        if os.fspath(path) == str(unreadable):
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(UserError, match=re.escape(f"--data-real {unreadable}: cannot be read (Permission denied)")):
        scenario.settings_from(_options(data_real=str(unreadable)), PROFILES["quick"], str(tmp_path))
    monkeypatch.setattr(os, "listdir", real_listdir)
    path, _ = imagenet_weights_path("mobilenet_v3_small")
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    found = scenario.settings_from(_options(weights="imagenet", model="mobilenet_v3_small"), PROFILES["quick"], "/")
    assert found["imagenet_path"] == path


def test_factory_recipe_comes_from_the_profile():
    chosen = {"model": "smallcnn", "image_size": 128, "seed": 3, "weights": "synthetic", "pretrain_images": None}
    for profile in PROFILES.values():
        recipe = pretraining_for(profile, chosen)
        assert (recipe.factory_images, recipe.epochs) == (profile.factory_images, profile.factory_epochs)
        assert (recipe.n_train, recipe.n_val) == (profile.n_train, profile.n_val)
    mine = pretraining_for(PROFILES["quick"], dict(chosen, pretrain_images=64))
    assert mine.factory_images == 64 and mine.factory_size == 64
    # The cache key names everything that changes the checkpoint (and keeps earlier caches valid).
    epochs = PROFILES["quick"].factory_epochs
    assert mine.name == f"smallcnn-synth-128px-512+128-seed3-f64x64px-e{epochs}-synthetic-r{PRETRAIN_RECIPE}"


def test_pretraining_is_cached_with_an_atomic_sidecar(tmp_path, monkeypatch):
    from bench_support.continual import factory

    recipe = Pretraining("smallcnn", image_size=32, n_train=4, n_val=4, factory_images=32, epochs=1, seed=0)
    data_dir = tmp_path / "data"
    cache = data_dir / "pretrained"
    calls, progress = [], []

    def fake_worker(mode, config, cwd, on_progress=None):
        calls.append((mode, config))
        open(config["output"], "wb").close()
        return {"pretrain_s": 1.5, "pretrain_synth_acc": 0.9}

    monkeypatch.setattr(factory, "run_once", fake_worker)
    first = recipe.ensure(str(data_dir), str(tmp_path), progress.append)
    assert [mode for mode, _ in calls] == ["pretrain"] and len(progress) == 1 and "once; cached in" in progress[0]
    assert first["pretrain_cached"] is False and first["pretrained"] == str(cache / f"{recipe.name}.pt")
    assert sorted(os.listdir(cache)) == [f"{recipe.name}.json", f"{recipe.name}.pt"]  # no temp file left
    sidecar = read_json(str(cache / f"{recipe.name}.json"))
    assert sidecar["recipe"] == PRETRAIN_RECIPE and sidecar["pretrain_synth_acc"] == 0.9
    assert "pretrained" not in sidecar and "synth_dir" not in sidecar  # paths are not part of the figures

    again = recipe.ensure(str(data_dir), str(tmp_path), progress.append)
    assert len(calls) == 1 and len(progress) == 1
    assert again["pretrain_cached"] is True and again["pretrain_synth_acc"] == 0.9
    assert again["synth_dir"] == first["synth_dir"] and os.path.isdir(again["synth_dir"])


def test_standin_set_is_generated_once_with_an_atomic_manifest(tmp_path):
    directory = ensure_standin(str(tmp_path), per_class=1, seed=0)
    names = sorted(os.listdir(directory))
    assert names == [".complete.json", "blue_circle_01.jpg", "blue_square_01.jpg", "green_circle_01.jpg",
                     "orange_circle_01.jpg", "orange_square_01.jpg", "orange_triangle_01.jpg"]  # fmt: skip
    assert read_json(os.path.join(directory, ".complete.json")) == {"per_class": 1, "seed": 0, "files": 6}
    photo = os.path.join(directory, "blue_circle_01.jpg")
    stamp = os.stat(photo).st_mtime_ns
    assert ensure_standin(str(tmp_path), per_class=1, seed=0) == directory
    assert os.stat(photo).st_mtime_ns == stamp  # reused, not generated again
    os.unlink(photo)
    ensure_standin(str(tmp_path), per_class=1, seed=0)
    assert os.path.getsize(photo) > 0  # a missing photo is made again


def test_standin_photos_are_readable_by_every_user_whatever_the_umask(tmp_path):
    previous = os.umask(0o077)
    try:
        directory = ensure_standin(str(tmp_path), per_class=1, seed=0)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
    for name in os.listdir(directory):  # the photos and the manifest
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o644, name


class _FakePretraining:
    def ensure(self, data_dir, root, note, bar=None):
        return {"pretrained": "/p/x.pt", "synth_dir": "/p/synth", "pretrain_s": 1.0}


def test_a_read_only_project_folder_costs_the_disk_column_only(tmp_path, monkeypatch):
    """No traceback: the disk checkpoint column is unavailable with the reason, said once; the rest runs."""
    real, project = tmp_path / "photos", tmp_path / "project"
    real.mkdir()
    project.mkdir()
    for label, base in (("orange_square", 0), ("blue_circle", 20)):
        for i in range(3):
            _photo(real / f"{label}_{i:02d}.jpg", label, base + i)
    resolved = scenario.settings_from(_options(data_real=str(real), epochs=1), PROFILES["smoke"], str(project))
    monkeypatch.setattr(scenario, "pretraining_for", lambda *a: _FakePretraining())
    live = []
    undo = make_unwritable(project)
    try:
        prepared = scenario.prepare(resolved, PROFILES["smoke"], str(tmp_path / "data"), str(project), live.append)
    finally:
        undo()
    assert not os.path.exists(project / ".bench-ckpt")
    disk = next(t for t in prepared.targets.values() if t["role"] == "disk")
    assert disk["directory"] is None and disk["unavailable"].startswith(f"cannot make {project / '.bench-ckpt'}")
    (line,) = [x for x in live if "not measured" in x]
    assert line.startswith("edge-bench: continual-learning checkpoint writes to ") and disk["unavailable"] in line
    assert prepared.worker_config("head", "sgd")["ckpt_dirs"] == {
        label: t["directory"] for label, t in prepared.targets.items() if t["directory"]
    }
    prepared.close()


def test_unusable_photos_are_unavailable_before_any_pretraining(tmp_path, monkeypatch):
    real = tmp_path / "photos"
    real.mkdir()
    for i in range(4):
        _photo(real / f"orange_square_{i}.jpg", "orange_square", i)
    _photo(real / "IMG_1.jpg")
    resolved = scenario.settings_from(_options(data_real=str(real)), PROFILES["smoke"], str(tmp_path))
    monkeypatch.setattr(scenario, "pretraining_for", lambda *a: pytest.fail("pretrained for unusable photos"))
    live = []
    with pytest.raises(Unavailable) as info:
        scenario.prepare(resolved, PROFILES["smoke"], str(tmp_path / "data"), str(tmp_path), live.append)
    assert str(info.value) == photos.scan(str(real)).unusable_reason()
    assert len(live) == 1 and live[0].startswith("edge-bench: ") and "IMG_1.jpg" in live[0]
    assert issubclass(WorkerError, UserError)


class _FakeWorker:
    """Answers like the fine-tune worker, without a process or torch."""

    def __init__(self, mode, config, cwd):
        assert mode == "finetune"
        self.config, self.epoch = config, 0
        self.lean = config["finetune"] == "head"

    def read(self):
        ready = {"acc_before": 0.5, "synth_acc_before": 0.6, "mem_baseline_mb": 100.0, "trainable_params": 10,
                 "total_params": 20, "model_classes": ["a", "b"], "torch_threads": 2, "pretrained_acc": 0.4,
                 "pretrained_acc_per_class": {"a": 0.8, "b": 0.0}, "acc_per_class_before": {"a": 0.6, "b": 0.4},
                 "pretrained_synth_acc": 0.9, "new_classes": ["b"], "mem_import_mb": 80.0, "acc_ncm_before": 0.55,
                 "acc_ncm_per_class_before": {"a": 0.6, "b": 0.5}, "views_per_epoch": 8,
                 "replay_per_batch": 2, "mem_peak_reset": True}  # fmt: skip
        return {"ready": ready}

    def request(self, command):
        if command == "epoch":
            return {"time_s": 0.5}
        self.epoch += 1
        peak = 120.0 + (0 if self.lean else 300.0) + self.epoch
        ckpt = {label: {"ms": 4.0 * self.epoch, "mb": 1.5} for label in self.config["ckpt_dirs"]}
        return {"epoch": self.epoch, "acc": 0.6 + 0.1 * self.epoch, "synth_acc": 0.8, "time_s": 0.5, "loss": 1.0,
                "acc_per_class": {"a": 0.9, "b": 0.5}, "acc_known": 0.9, "acc_new": 0.5, "acc_ncm": 0.75,
                "acc_ncm_per_class": {"a": 0.8, "b": 0.7}, "acc_ncm_known": 0.8, "acc_ncm_new": 0.7,
                "fetch_stall_s": 0.01, "mem_peak_abs_mb": peak, "mem_delta_mb": peak - 100.0, "mem_now_mb": 110.0,
                "mem_hwm_mb": peak, "ckpt": ckpt}  # fmt: skip

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class _FakeHarness:
    def run(self, target, rounds, teardown=None, memory=True):
        assert memory is False  # the worker measures its own memory
        for _ in range(rounds):
            target()
            teardown()


EXTRA_INFO_KEYS = {
    "config", "finetune", "optimizer", "before", "epochs", "final_acc", "final_synth_acc", "finetune_s",
    "mem_peak_abs_mb", "mem_delta_mb", "mem_now_mb", "mem_baseline_mb", "mem_peak_method", "mem_peak_reset",
    "rss_budget_mb",
    "within_budget", "trainable_params", "total_params", "model_classes", "torch_threads", "photos", "pretraining",
    "ckpt_targets", "settings", "ext4_ms", "tmpfs_ms", "tmpfs_unavailable", "final_acc_per_class", "final_acc_known",
    "final_acc_new", "new_classes", "pretrained_acc", "lift", "forgetting", "mem_import_mb", "final_acc_ncm",
    "final_acc_ncm_per_class", "final_acc_ncm_known", "final_acc_ncm_new", "views_per_epoch", "replay_per_batch",
    "torchvision_loaded",
}  # fmt: skip


def test_scenario_runs_finishes_and_reports_an_outcome(tmp_path, monkeypatch):
    monkeypatch.setattr(scenario, "Worker", _FakeWorker)
    resolved = scenario.settings_from(_options(epochs=2, rss_budget_mb=400), PROFILES["quick"], str(tmp_path))
    items = [(f"/p/{label}_{i}.jpg", label) for label in ("blue_circle", "orange_square") for i in range(4)]
    choice = scenario.PhotoChoice("stand-in", photos.PhotoSet("/p", items), "no photos: stand-ins")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    targets = {
        "ext4": {"directory": str(ckpt), "role": "disk"},
        "tmpfs": {"directory": None, "role": "memory", "unavailable": "no tmpfs at /x (nothing)"},
    }
    pretrained = {"pretrained": "/p/x.pt", "synth_dir": "/p/synth", "pretrain_s": 1.0}
    live = []
    scene = scenario.Scenario(resolved, choice, pretrained, targets, str(tmp_path), live.append, ["no photos"])
    assert scene.finish(str(tmp_path / "unused")).json_block() is None  # nothing ran yet
    whole = scene.run(_FakeHarness(), "whole", "adam")
    head = scene.run(_FakeHarness(), "head", "sgd")
    assert set(whole) == EXTRA_INFO_KEYS
    assert whole["ext4_ms"] == 6.0 and whole["tmpfs_ms"] is None and "no tmpfs" in whole["tmpfs_unavailable"]
    assert whole["within_budget"] is False and head["within_budget"] is True
    assert whole["before"] == {
        "acc": 0.5, "synth_acc": 0.6, "acc_per_class": {"a": 0.6, "b": 0.4}, "pretrained_acc": 0.4,
        "pretrained_acc_per_class": {"a": 0.8, "b": 0.0}, "pretrained_synth_acc": 0.9, "acc_ncm": 0.55,
        "acc_ncm_per_class": {"a": 0.6, "b": 0.5},
    }  # fmt: skip
    assert whole["final_acc_ncm"] == 0.75 and whole["final_acc_ncm_new"] == 0.7 and whole["views_per_epoch"] == 8
    assert "nearest mean 0.750" in cl_outputs.summary_line(whole)
    assert whole["lift"] == pytest.approx(whole["final_acc"] - 0.4) and whole["forgetting"] == pytest.approx(0.9 - 0.8)
    assert whole["final_acc_per_class"] == {"a": 0.9, "b": 0.5} and whole["new_classes"] == ["b"]
    assert "synth_dir" not in whole["pretraining"]
    assert live == scene.lines and sum(line.startswith("epoch 2: acc=0.800") for line in live) == 2
    scene.close()
    assert not ckpt.exists()

    outcome = scene.finish(str(tmp_path / "out"))
    block = outcome.json_block()
    assert set(block) == {"outputs", "configs", "photos", "pretraining", "notes"}
    assert [c["config"] for c in block["configs"]] == ["whole-adam", "head-sgd"]
    assert set(block["configs"][0]) == set(scenario.SUMMARY_KEYS)
    assert block["notes"] == ["no photos"] and block["photos"]["source"] == "stand-in"
    with open(block["outputs"]["csv"]) as fh:
        assert [row["epoch"] for row in csv.DictReader(fh)] == ["0", "1", "2"] * 2
    lines = outcome.terminal_lines()
    assert lines[:3] == [cl_outputs.summary_line(whole), cl_outputs.summary_line(head), "no photos"]
    assert lines[3].startswith("continual-learning results: ") and lines[4].startswith("continual-learning plots in ")
    assert "over the 400 MB budget" in lines[0] and not any(line.startswith("edge-bench") for line in lines)

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    failed = scene.finish(str(blocked / "out"))
    error = f"cannot write the continual-learning outputs to {blocked / 'out'}: Not a directory"
    assert failed.outputs == {"error": error} and failed.terminal_lines()[-1] == error


@pytest.mark.parametrize("bits", [16, 8])
def test_a_wide_grey_photo_keeps_its_greys_instead_of_turning_white(tmp_path, bits):
    """Pillow's convert("RGB") clips a 16-bit grey at 255: such photos reached the model white."""
    from PIL import Image

    ramp = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / (64 * 64 - 1)  # 0 … 1
    values = (ramp * (2**bits - 1)).astype(np.uint16 if bits == 16 else np.uint8)
    Image.fromarray(values).save(tmp_path / "grey_ramp_01.png")
    loaded = np.asarray(photos.load_photo(str(tmp_path / "grey_ramp_01.png"), 32), dtype=np.float64)
    assert loaded.shape == (64, 64, 3)
    assert abs(loaded.mean() - 127.5) < 1.0 and loaded.min() <= 1 and loaded.max() >= 254


def test_a_class_named_like_a_column_keeps_its_own_column(tmp_path):
    """Classes ``ncm_known`` and ``ncm_new`` wrote their head accuracy over the nearest mean's columns."""
    per_class = {"ncm_known": 1.0, "ncm_new": 0.0}
    epoch = {"acc": 0.5, "acc_ncm_known": 0.25, "acc_ncm_new": 0.75, "acc_per_class": per_class}
    result = {"config": "head-sgd", "finetune": "head", "optimizer": "sgd", "photos": {"source": "user"},
              "before": {"acc": 0.1, "acc_per_class": {"ncm_known": 0.0, "ncm_new": 0.0}}, "epochs": [epoch],
              "final_acc_per_class": {"ncm_known": 1.0, "ncm_new": 0.0}}  # fmt: skip
    path = tmp_path / "results.csv"
    cl_outputs.write_csv([result], [], str(path))
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
        fh.seek(0)
        rows = list(csv.DictReader(fh))
    assert len(header) == len(set(header))
    assert rows[1]["acc_ncm_known"] == "0.25" and rows[1]["acc_ncm_new"] == "0.75"
    assert rows[1]["acc_class_ncm_known"] == "1.0" and rows[1]["acc_class_ncm_new"] == "0.0"
