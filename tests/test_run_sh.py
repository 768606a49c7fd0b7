"""run.sh passes a stop on to the run it started: a CI timeout's SIGTERM must not leave tox and pytest going."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

# Stands in for tox: `--version` and `--notest` (the environment build) succeed at once; `run` starts a long job that,
# like pytest, saves what finished on SIGINT and exits 2.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = -m ] && [ "$2" = tox ]; then
  case " $* " in
    *" --version "*) echo "tox 4.0 (fake)"; exit 0 ;;
    *" --notest "*) exit 0 ;;
  esac
  exec {python} -c '
import os, sys, time
try:
    print("job started", os.getpid(), flush=True)
    time.sleep(float(os.environ.get("FAKE_JOB_S", "120")))
except KeyboardInterrupt:
    print("job saved what finished", flush=True)
    sys.exit(2)
print("job ran to its end", flush=True)
'
fi
exec {python} "$@"
"""


@pytest.fixture
def fake_checkout(tmp_path):
    shutil.copy(os.path.join(REPO, "run.sh"), tmp_path / "run.sh")
    (tmp_path / ".tox" / "cpu" / "bin").mkdir(parents=True)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    return tmp_path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _as_from_a_terminal():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _as_nohup_in_the_background():
    """`nohup ./run.sh &` from a script: SIGHUP ignored by nohup, SIGINT by the shell that started the job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.parametrize(
    "command, signum, status, started",
    [
        (["test", "cpu"], signal.SIGTERM, 143, _as_from_a_terminal),
        (["cpu"], signal.SIGTERM, 143, _as_from_a_terminal),
        (["cpu"], signal.SIGINT, 130, _as_from_a_terminal),
        (["cpu"], signal.SIGTERM, 143, _as_nohup_in_the_background),
    ],
    ids=["test-term", "bench-term", "bench-int", "bench-term-nohup"],
)
def test_a_stop_reaches_the_job_which_keeps_what_finished(fake_checkout, command, signum, status, started):
    # The environment's python: the benchmarks' torch check and the tests' pytest-xdist check pass through it.
    (fake_checkout / ".tox" / "cpu" / "bin" / "python").symlink_to(fake_checkout / "fake-python")
    env = dict(os.environ, PYTHON=str(fake_checkout / "fake-python"), BENCH_PLATFORM="cpu")
    env.pop("BENCH_TORCH_INDEX_URL", None)
    proc = subprocess.Popen(
        ["bash", str(fake_checkout / "run.sh"), *command], cwd=fake_checkout, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=started,
    )  # fmt: skip
    job = None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("job started"):
            job = int(line.split()[2])
            break
        assert time.monotonic() < deadline
    assert job is not None, "the job never started"
    proc.send_signal(signum)
    rest = proc.communicate(timeout=60)[0]
    assert "job saved what finished" in rest, rest
    assert f"run.sh: stopped by {signal.Signals(signum).name}" in rest, rest
    assert proc.returncode == status, rest
    assert not _alive(job), "the job outlived run.sh"


FAKE_DF = """#!/bin/sh
echo "Filesystem     1024-blocks      Used Available Capacity Mounted on"
echo "/dev/vdz         263174212 100000000 {free_kb} 99% /srv/full"
"""


@pytest.mark.parametrize("free_kb, refused", [(102400, True), (100 * 1024 * 1024, False)], ids=["100MB", "100GB"])
def test_a_full_disk_is_refused_before_pip_starts(fake_checkout, free_kb, refused):
    # No environment yet (no .tox/cpu/bin/python): run.sh is about to build one. pip would spend a minute and then
    # fail with "No space left on device" under a page of warnings (a CI run on a shared disk did).
    bin_dir = fake_checkout / "bin"
    bin_dir.mkdir()
    (bin_dir / "df").write_text(FAKE_DF.format(free_kb=free_kb))
    (bin_dir / "df").chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake_checkout / "fake-python"), PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("BENCH_TORCH_INDEX_URL", None)
    env.pop("BENCH_SKIP_DISK_CHECK", None)
    res = subprocess.run(
        ["bash", str(fake_checkout / "run.sh"), "test", "cpu"], cwd=fake_checkout, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    said = [line for line in res.stderr.splitlines() if "needs about" in line]
    if refused:
        assert res.returncode == 2, res.stderr
        assert len(said) == 1 and said[0].startswith("run.sh: building .tox/cpu needs about "), res.stderr
        assert "on /srv/full, only 100 MB are" in said[0], said
        assert "Traceback" not in res.stderr
    else:
        assert said == [], res.stderr
        assert "run.sh: building .tox/cpu (" in res.stdout, res.stdout  # past the check, on to the build


FAKE_ENV_PYTHON = """#!/bin/sh
case "$2" in
  bench_support.report) echo "report over $3" >> "$REPORT_LOG"; mkdir -p "$3"; : > "$3/report.html" ;;
esac
exit 0
"""


@pytest.mark.parametrize(
    "args, folder",
    [([], "results"), (["--save-results", "{tmp}/elsewhere"], "{tmp}/elsewhere"),
     (["--save-results={tmp}/a", "--save-results={tmp}/b"], "{tmp}/b"),
     (["--save-results=~/runs"], "{tmp}/home/runs")],
    ids=["default", "two-words", "last-wins", "home"],
)  # fmt: skip
def test_the_report_reads_the_folder_the_run_saved_to(fake_checkout, tmp_path, args, folder):
    env_python = fake_checkout / ".tox" / "cpu" / "bin" / "python"
    env_python.write_text(FAKE_ENV_PYTHON)
    env_python.chmod(0o755)
    log = tmp_path / "report.log"
    env = dict(os.environ, PYTHON=str(fake_checkout / "fake-python"), BENCH_PLATFORM="cpu", FAKE_JOB_S="0",
               REPORT_LOG=str(log), HOME=str(tmp_path / "home"))  # fmt: skip
    env.pop("BENCH_TORCH_INDEX_URL", None)
    env.pop("BENCH_FAIL_ON", None)
    res = subprocess.run(
        ["bash", str(fake_checkout / "run.sh"), "cpu", *(a.format(tmp=tmp_path) for a in args)],
        cwd=fake_checkout, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    expected = folder.format(tmp=tmp_path)
    assert log.read_text().splitlines() == [f"report over {expected}"]
    assert f"run.sh: report: {expected}/report.html" in res.stdout
