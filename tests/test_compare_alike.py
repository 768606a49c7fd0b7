"""pytest-benchmark's own comparison during a run: with the last run of the same profile, and it says so."""

import os
from types import SimpleNamespace

import pytest

from bench_support import results
from bench_support.plugin.storage import configure_storage


def _config():
    option = SimpleNamespace(benchmark_save=None, benchmark_autosave=False, benchmark_compare=None)
    return SimpleNamespace(option=option)


@pytest.fixture
def device(tmp_path):
    folder = results.storage_dir(str(tmp_path))
    os.makedirs(folder)
    for label in ("0001_quick", "0002_quick", "0003_smoke"):
        open(os.path.join(folder, label + ".json"), "w").close()
    return str(tmp_path)


@pytest.mark.parametrize(
    "profile, compare, says",
    [
        ("quick", "0002", "compared with 0002_quick, the last quick run of this device; 0003_smoke, newer, used"),
        ("smoke", "0003", "compared with 0003_smoke, the last smoke run of this device"),
        ("full", None, "not compared: no earlier full run here (the last run, 0003_smoke, used another profile)"),
    ],
)
def test_a_run_is_compared_with_the_last_run_of_its_profile(device, profile, compare, says):
    config = _config()
    line = configure_storage(config, device, profile)
    assert config.option.benchmark_compare == compare and line.startswith(says)
    assert config.option.benchmark_save == profile and config.option.benchmark_save_data is True


def test_an_explicit_compare_is_kept_and_named(device):
    config = _config()
    config.option.benchmark_compare = "0001"
    assert configure_storage(config, device, "smoke") == "compared with run 0001 as asked (--benchmark-compare)"
    assert config.option.benchmark_compare == "0001"


def test_a_first_run_compares_with_nothing_and_says_nothing(tmp_path):
    config = _config()
    assert configure_storage(config, str(tmp_path), "quick") == "" and config.option.benchmark_compare is None
