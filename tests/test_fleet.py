"""The fleet playbook against an inventory of two "devices" on this machine and one that cannot be reached."""

import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO

ANSIBLE = os.path.join(REPO, ".venv-fleet", "bin", "ansible-playbook")


@pytest.fixture(scope="module")
def ansible_playbook():
    """ansible-core in .venv-fleet/, installed the way ./run.sh fleet does it (once)."""
    # Test workers (pytest-xdist) that need it at once install it one after the other: fleet/run starts a missing
    # install afresh, so a second one would remove the first's half-made folder.
    lock = os.path.join(tempfile.gettempdir(), f"edge-bench-tests-fleet-{os.getuid()}.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        installed = subprocess.run(
            [os.path.join(REPO, "fleet", "run"), "--install-only"], capture_output=True, text=True, timeout=600
        )
    if installed.returncode != 0 and "could not install" in installed.stderr:
        pytest.skip(f"ansible-core not installable here: {installed.stderr.strip()}")
    assert installed.returncode == 0, installed.stderr
    return ANSIBLE


def test_two_devices_are_gathered_into_one_report_and_the_unreachable_one_is_named(
    ansible_playbook, tmp_path, shared_data_dir
):
    home = tmp_path / "home"  # bench-b's suite_dir starts with ~, as the example inventory's does
    home.mkdir()
    devices = {"bench-a": tmp_path / "bench-a", "bench-b": home / "bench-b"}
    # The suite's own benchmark command, without run.sh's tox layer (the tests already run in its environment):
    # the smallest selection that saves a result.
    command = (
        f"{sys.executable} -m pytest benchmarks -p no:cacheprovider --profile smoke -k 'checkpoint_write and shm' "
        f"--data-dir {shared_data_dir} --device-name={{{{ device }}}} --save-results=results"
    )
    inventory = {
        "devices": {
            "hosts": {
                "bench-a": {"suite_dir": str(devices["bench-a"])},
                "bench-b": {"suite_dir": "~/bench-b"},
                "bench-bad": {
                    "suite_dir": str(tmp_path / "bench-bad"),
                    "bench_command": "sh -c 'echo run.sh: disk full; exit 3'",
                },
                "bench-gone": {
                    "ansible_host": "192.0.2.1",  # TEST-NET-1: never routed
                    "ansible_connection": "ssh",
                    "ansible_ssh_common_args": "-o ConnectTimeout=2 -o BatchMode=yes",
                },
            },
            "vars": {
                "ansible_python_interpreter": sys.executable,
                "ansible_connection": "local",
                "bench_command": command,
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    results = tmp_path / "gathered"
    extra = {"controller_results": str(results), "fleet_dir": str(tmp_path / "scratch")}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    env = dict(
        os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "fleet", "ansible.cfg"), ANSIBLE_NOCOLOR="1", HOME=str(home)
    )
    run = subprocess.run(
        [ansible_playbook, "-i", f"{tmp_path}/inventory.json", "fleet/playbook.yml", "-e", f"@{tmp_path}/extra.json"],
        cwd=REPO, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode != 0, out[-3000:]  # a device failed: the fleet run says so
    assert "bench-a: ok" in out and "bench-b: ok" in out, out[-3000:]
    assert "bench-gone: FAILED: unreachable" in out
    assert "bench-bad: FAILED: run.sh: disk full" in out  # a failed run's last message
    assert "devices that failed: bench-bad, bench-gone" in out
    # Each device's suite folder got the suite, and its results came back into one results/.
    for name, path in devices.items():
        assert (path / "run.sh").exists() and (path / "bench_support").is_dir()
        assert (path / "results" / name).is_dir()
        saved = list((results / name).glob("*/0001_smoke.json"))
        assert len(saved) == 1, sorted(os.listdir(results))
    assert not (results / "report.html").exists()  # a device's own report stays on the device

    report = subprocess.run(
        [sys.executable, "-m", "bench_support.report", str(results)], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    with open(results / "report.csv") as fh:
        devices_reported = {row["device"] for row in csv.DictReader(fh)}
    assert devices_reported == {"bench-a", "bench-b"}


@pytest.mark.parametrize(
    "text, reason",
    [("", ""), ("all:\n  hosts: [\n", "(YAML parsing failed"), ("others:\n  hosts:\n    a:\n", "")],
    ids=["empty", "malformed", "no-devices-group"],
)
def test_an_inventory_without_devices_is_one_line_before_ansible_runs(ansible_playbook, tmp_path, text, reason):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(text)
    run = subprocess.run(
        [os.path.join(REPO, "fleet", "run"), str(inventory)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stderr.count("\n") == 1 and f"inventory {inventory}: no device in its 'devices' group" in run.stderr
    assert reason in run.stderr and "PLAY" not in run.stdout


def test_when_no_device_answers_each_is_named_and_the_report_still_runs(ansible_playbook, tmp_path):
    """Ansible ends the playbook before its summary play when every device is unreachable; fleet/run then names each
    device from Ansible's recap, still runs the report over what was gathered before, and exits non-zero."""
    checkout = tmp_path / "checkout"  # fleet/ as it is, a stand-in run.sh, this repository's ansible-core
    shutil.copytree(os.path.join(REPO, "fleet"), checkout / "fleet")
    (checkout / ".venv-fleet").symlink_to(os.path.join(REPO, ".venv-fleet"))
    (checkout / "run.sh").write_text('#!/bin/sh\necho "stand-in run.sh: $*"\n')
    (checkout / "run.sh").chmod(0o755)
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)  # the playbook packs what git lists
    gone = {"ansible_connection": "ssh", "ansible_ssh_common_args": "-F /dev/null -o ConnectTimeout=2 -o BatchMode=yes"}
    hosts = {"gone-1": {"ansible_host": "192.0.2.1"}, "gone-2": {"ansible_host": "192.0.2.2"}}  # TEST-NET-1
    inventory = {"devices": {"hosts": hosts, "vars": {"ansible_python_interpreter": sys.executable, **gone}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    extra = {"controller_results": str(tmp_path / "gathered"), "fleet_dir": str(tmp_path / "scratch")}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    run = subprocess.run(
        [str(checkout / "fleet" / "run"), str(tmp_path / "inventory.json"), "-e", f"@{tmp_path}/extra.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode not in (0, 2), out[-3000:]  # Ansible's own status for unreachable hosts, not a refusal
    said = [line for line in run.stdout.splitlines() if line.startswith("run.sh fleet: ")]
    assert said == ["run.sh fleet: gone-1: FAILED: unreachable", "run.sh fleet: gone-2: FAILED: unreachable"], out
    assert "stand-in run.sh: report" in run.stdout, out[-3000:]
    assert "Traceback" not in out
