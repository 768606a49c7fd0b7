import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_pytest(*args, cwd=REPO, prefix=(), timeout=600, env=None):
    """Run pytest on the suite in a fresh process, as a user would."""
    cmd = [*prefix, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    full_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory):
    """One generated smoke dataset for all the end-to-end runs."""
    return str(tmp_path_factory.mktemp("data"))
