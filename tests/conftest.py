import inspect
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored across exec: the
# benchmark processes these tests interrupt with SIGINT (Ctrl-C) would then never see it. A handled signal
# is reset to its default at exec, so every child starts as it would from a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)

# A pytest-xdist worker (./run.sh test runs the tests in 2-3) marks itself in the environment, which every run these
# tests start would inherit; pytest-benchmark then disables benchmarking. A user's run never carries these marks.
for _mark in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
    os.environ.pop(_mark, None)

# The runs these tests start import the suite each time: with bytecode writing off (some shells and CIs set it),
# every one compiles bench_support again and pytest rewrites its asserts again (the plugin's package), about a
# second of each run's start-up. __pycache__/ is ignored by git.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def stop_signals_at_default():
    """A child's ``preexec_fn``: SIGINT, SIGTERM and SIGHUP at their defaults, as under a terminal.

    A test that stops a run with one of them must not depend on how it was itself started: under ``nohup`` (HUP
    ignored) or as a script's background job (INT ignored) the child would inherit the ignoring, and rightly keep
    it, so the stop the test sends would do nothing.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def run_pytest(*args, cwd=REPO, prefix=(), timeout=600, env=None):
    """Run pytest on the suite in a fresh process, as a user would."""
    cmd = [*prefix, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def make_unwritable(path):
    """Make a directory unwritable; returns the undo. chmod for a normal user, the
    immutable flag for root (whom permission bits do not stop); skips if neither works."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        return lambda: os.chmod(path, 0o755)
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root and cannot set the immutable flag here (chattr)")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory):
    """One generated smoke dataset for all the end-to-end runs."""
    return str(tmp_path_factory.mktemp("data"))


def _tree(path):
    return sorted(os.path.relpath(os.path.join(base, name), path) for base, _, names in os.walk(path) for name in names)


@pytest.fixture(scope="session", autouse=True)
def results_folder_untouched():
    """Tests write only under temporary directories: the user's results/ is the same afterwards."""
    folder = os.path.join(REPO, "results")
    before = _tree(folder)
    yield
    assert _tree(folder) == before, "a test wrote into results/ (pass --save-results under tmp_path)"


# --- the fast tier ------------------------------------------------------------------------
# `./run.sh test fast` runs `-m "not slow"`: the unit and property tests. A test is slow when it starts another
# interpreter (a pytest run as a user's, a worker, torchrun, ansible) or needs a fixture that does: marked here from
# its source, so a new end-to-end test cannot slip into the fast tier by forgetting a decorator.
_STARTS_A_PROCESS = re.compile(r"subprocess\.|Popen\(|run_pytest\(|\b_pytest\(|\b_run\(|_sweep_command|os\.fork\(")
_SLOW_FIXTURES = {"tiny", "shared_data_dir", "ansible_playbook", "own_project", "fake_checkout", "tiny_dataset"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts another interpreter; left out of ./run.sh test fast")


def pytest_collection_modifyitems(config, items):
    sources = {}
    for item in items:
        function = getattr(item, "function", None)
        if function is None:
            continue
        if function not in sources:
            try:
                sources[function] = inspect.getsource(function)
            except (OSError, TypeError):
                sources[function] = ""
        if _STARTS_A_PROCESS.search(sources[function]) or _SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
