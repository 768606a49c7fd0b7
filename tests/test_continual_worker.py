"""The continual worker's lifetime and privacy: it never outlives the benchmark process, Ctrl-C never
waits for it, and what it is handed (the user's photo list) and writes (checkpoints fine-tuned on the
photos) is the user's alone and gone when the run ends.

The worker is the real one (a fresh Python importing torch), on a tiny configuration: two classes of
three small photos, a 32 px SmallCNN, one epoch.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")

GONE_WITHIN_S = 30.0  # bounded waits: a worker that outlives its owner stays for ever


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(photo items, pretrained checkpoint) for a fine-tune worker that starts in seconds."""
    import torch

    from bench_support.continual.model import build_cl_model
    from bench_support.continual.standin import render_photo

    root = tmp_path_factory.mktemp("tiny")
    items = []
    for label, base in (("blue_circle", 0), ("orange_square", 10)):
        for i in range(3):
            path = root / f"{label}_{i:02d}.jpg"
            render_photo(label, np.random.default_rng(base + i)).save(path, format="JPEG", quality=80)
            items.append((str(path), label.replace("_", "-") + "_photo"))  # not a synthetic class: a new head
    pretrained = root / "pretrained.pt"
    torch.save({"model": build_cl_model("smallcnn", 4).state_dict()}, pretrained)
    return items, str(pretrained)


def _config(tiny, ckpt_dirs):
    items, pretrained = tiny
    train = [it for i, it in enumerate(items) if i % 3]
    held = [it for i, it in enumerate(items) if not i % 3]
    return {
        "model": "smallcnn", "image_size": 32, "batch": 2, "workers": 0, "epochs": 1, "seed": 0,
        "allow_network": False, "finetune": "head", "optimizer": "sgd", "pretrained": pretrained,
        "synth_dir": None, "photo_classes": sorted({c for _, c in items}), "train": train, "held_out": held,
        "ckpt_dirs": ckpt_dirs,
    }  # fmt: skip


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until(condition, timeout_s=GONE_WITHIN_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _worker_pids(shell_pid):
    """The worker and everything else in the group the shell leads."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != shell_pid and os.getpgid(proc.pid) == shell_pid:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def _start_parent(script, tmp_path, config):
    """A benchmark process of its own (so it can be killed), running ``script``; returns (proc, its first line)."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    code = "import json, os, sys, time\nconfig = json.load(open(sys.argv[1]))\n" + textwrap.dedent(script)
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "config.json")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
    )  # fmt: skip
    line = parent.stdout.readline()
    if not line:
        parent.wait(timeout=60)
        pytest.fail(f"the parent script failed: {parent.stderr.read()[-3000:]}")
    return parent, json.loads(line)


def test_a_killed_benchmark_process_takes_its_busy_worker_and_folders_with_it(tmp_path):
    """SIGKILL (the OOM killer's way) of the process that started a worker in the middle of minutes of
    pretraining: the worker, its shell and the folders named after the dead process (its config, the
    checkpoint targets) are gone soon after, not when the pretraining ends."""
    script = """
        from bench_support.continual.worker import Worker
        from bench_support import leftovers
        ckpt = os.path.join(sys.argv[1] + ".d", "continual-" + leftovers.owner_tag())
        os.makedirs(ckpt)
        config["ckpt_dirs"] = {"disk": ckpt}
        worker = Worker("pretrain", config, os.getcwd())
        print(json.dumps({"shell": worker.proc.pid, "dir": worker._dir, "ckpt": ckpt}), flush=True)
        time.sleep(600)
    """
    # Rendering this many factory images alone takes minutes: the worker reads nothing meanwhile.
    busy = {"model": "smallcnn", "seed": 0, "weights": "synthetic", "imagenet_path": None, "synth_dir": None,
            "image_size": 16, "factory_images": 300_000, "factory_size": 16, "epochs": 1, "output": None}  # fmt: skip
    parent, info = _start_parent(script, tmp_path, busy)
    try:
        assert _wait_until(lambda: _worker_pids(info["shell"]), 10)
        workers = _worker_pids(info["shell"])
        assert os.path.isdir(info["dir"]) and os.path.isdir(info["ckpt"])
        time.sleep(3)  # well into its work
        parent.kill()
        parent.wait(timeout=60)
        alive = lambda: [pid for pid in [info["shell"], *workers] if not _gone(pid)]  # noqa: E731
        assert _wait_until(lambda: not alive()), f"still running {GONE_WITHIN_S:.0f} s later: {alive()}"
        assert _wait_until(lambda: not os.path.exists(info["dir"]) and not os.path.exists(info["ckpt"]))
    finally:
        parent.kill()
        try:
            os.killpg(info["shell"], signal.SIGKILL)  # whatever the outcome, nothing of it runs on
        except ProcessLookupError:
            pass


def test_ctrl_c_kills_a_busy_worker_at_once(tiny, tmp_path):
    """A worker in the middle of an epoch reads no command; Ctrl-C must not wait for it to quit."""
    script = """
        import psutil
        from bench_support.continual import photos, scenario, worker
        worker.QUIT_WAIT_S = 3600  # a close() that waited for the stopped worker's answer would wait an hour
        from bench_support.profiles import PROFILES
        settings = scenario.settings_from(
            {"model": "smallcnn", "image_size": 32, "batch": 2, "workers": 0, "epochs": 1, "seed": 0,
             "weights": "synthetic", "rss_budget_mb": None, "data_real": None, "allow_network": False,
             "pretrain_images": None}, PROFILES["smoke"], os.getcwd())
        items = [tuple(it) for it in config["train"] + config["held_out"]]
        choice = scenario.PhotoChoice("user", photos.PhotoSet(os.path.dirname(items[0][0]), items))
        pretrained = {"pretrained": config["pretrained"], "synth_dir": None}
        targets = {"disk": {"directory": sys.argv[1] + ".ckpt", "role": "disk"}}
        os.makedirs(targets["disk"]["directory"])

        class Harness:
            def run(self, target, rounds, teardown=None, memory=True):
                shell = psutil.Process().children()[0]
                print(json.dumps({"shell": shell.pid}), flush=True)
                time.sleep(600)  # Ctrl-C arrives here

        scene = scenario.Scenario(settings, choice, pretrained, targets, os.getcwd(), lambda line: None)
        scene.run(Harness(), "head", "sgd")
    """
    parent, info = _start_parent(script, tmp_path, _config(tiny, {}))
    assert _wait_until(lambda: _worker_pids(info["shell"]), 120)
    workers = _worker_pids(info["shell"])
    try:
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)  # as busy as a long epoch: no command is read
        parent.send_signal(signal.SIGINT)
        try:
            # Seconds when Ctrl-C does not wait for the worker; an hour if it did. The margin is for busy CI cores.
            parent.wait(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("the benchmark process still waited for its worker 300 s after Ctrl-C")
        assert "KeyboardInterrupt" in parent.stderr.read()
        assert _wait_until(lambda: all(_gone(pid) for pid in [info["shell"], *workers]), 10)
    finally:
        parent.kill()
        try:
            os.killpg(info["shell"], signal.SIGKILL)  # a stopped worker would stay for ever
        except ProcessLookupError:
            pass


def test_quit_waits_a_bounded_time_for_a_worker_that_does_not_answer(tiny, tmp_path, monkeypatch):
    from bench_support.continual import worker as module
    from bench_support.continual.worker import Worker

    monkeypatch.setattr(module, "QUIT_WAIT_S", 1.0)
    worker = Worker("finetune", _config(tiny, {}), REPO)
    worker.read()
    workers = _worker_pids(worker.proc.pid)
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    start = time.monotonic()
    worker.close()
    # QUIT_WAIT_S, then the group is killed: a close() that waited for the answer would never return.
    assert time.monotonic() - start < module.QUIT_WAIT_S + 60
    assert _wait_until(lambda: all(_gone(pid) for pid in [worker.proc.pid, *workers]), 10)


def test_what_the_worker_is_given_and_writes_is_private_and_removed(tiny, tmp_path):
    """The config (it lists the user's photos) and the fine-tuned checkpoints: 0600 in 0700 folders,
    named after the benchmark process, and removed when the worker and the targets are closed."""
    from bench_support import leftovers
    from bench_support.continual.targets import checkpoint_targets, remove_targets
    from bench_support.continual.worker import Worker

    targets = checkpoint_targets(str(tmp_path))
    dirs = {label: t["directory"] for label, t in targets.items() if t.get("directory")}
    assert dirs and all(stat.S_IMODE(os.stat(d).st_mode) == 0o700 for d in dirs.values())
    tag = leftovers.owner_tag()
    assert all(leftovers.named_after(d, tag) for d in dirs.values())
    worker = Worker("finetune", _config(tiny, dirs), REPO)
    try:
        worker.read()
        modes = {n: stat.S_IMODE(os.stat(os.path.join(worker._dir, n)).st_mode) for n in os.listdir(worker._dir)}
        assert modes == {"config.json": 0o600, "stderr.txt": 0o600}
        assert stat.S_IMODE(os.stat(worker._dir).st_mode) == 0o700
        assert os.path.basename(worker._dir).startswith(f"edge-bench-cl-{tag}-")
        worker.request("epoch")
        row = worker.request("after")
    finally:
        worker.close()
    assert all(v.get("ms") is not None for v in row["ckpt"].values()), row
    for directory in dirs.values():
        (written,) = os.listdir(directory)
        assert stat.S_IMODE(os.stat(os.path.join(directory, written)).st_mode) == 0o600
    assert not os.path.exists(worker._dir)
    remove_targets(targets)
    assert not any(os.path.exists(d) for d in dirs.values())


def test_training_delta_shows_below_a_setup_peak(tiny, tmp_path):
    """A large photo decodes in full during setup and can peak above anything training reaches: the delta over the
    peak so far then read 0.0. The high-water mark is reset before the first step, the lifetime peak is kept."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(tiny, {})))
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from bench_support.continual.finetune import FineTune
        setup = np.ones(1000 * 2**20, dtype=np.uint8)  # 1000 MB touched, then freed: setup's peak
        del setup
        tune = FineTune(json.load(open(sys.argv[1])))
        tune.train_epoch()
        print(json.dumps({**tune.after_epoch(), "ready": tune.ready}))
        """
    )
    from bench_support.continual.worker import through_shell

    # Through the shell, as the scenario starts it: started from pytest, ru_maxrss would carry pytest's peak.
    command = through_shell([sys.executable, "-c", script, str(config)])
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["ready"]["mem_peak_reset"] is True
    assert row["ready"]["mem_setup_peak_mb"] == pytest.approx(row["ready"]["mem_setup_hwm_mb"], rel=0.02)  # own peak
    assert row["mem_delta_mb"] == pytest.approx(row["mem_hwm_mb"] - row["ready"]["mem_baseline_mb"], abs=0.02)
    assert row["mem_peak_abs_mb"] == row["ready"]["mem_setup_peak_mb"]  # the lifetime peak is kept
    # The premise: training stayed far below setup's peak, where a delta over the peak so far read 0.0.
    assert row["ready"]["mem_setup_peak_mb"] > row["mem_hwm_mb"] + 100
    assert row["mem_delta_mb"] > 1.0  # gradients, activations: what the old delta (0.0) hid
