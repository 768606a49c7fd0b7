"""The suite's pytest face: options, state, storage hooks, fixtures, terminal output.

Loaded by the project's conftest.py (so it also applies to ``pytest-benchmark compare``)
and imported by nothing else in the library: benchmarks receive what they need through
fixtures, the library never reaches back up here.

    options.py   command-line options, checked at parse time by ``type=`` parsers
    state.py     the frozen SuiteState built from them (the ``suite`` fixture)
    session.py   configure, Unavailable/UserError as skip/one-line failure, the exit
    params.py    each benchmark parametrised from its module's GRID for the profile
    storage.py   pytest-benchmark's storage, machine facts, the saved JSON's suite block
    fixtures.py  suite, profile, image_datasets, harness, power_session, ...
    terminal.py  header, live progress lines, end-of-run summary
"""

import os

# Before anything loads torch's OpenMP runtime (it reads this once): threads that wait at a parallel
# region's end sleep instead of spinning. A spinning thread keeps a core from a descheduled sibling when
# any other process wants the CPU; measured on a 2-core machine with other work running, 32 steps of
# mobilenet_v3_small took 127-253 s spinning and 4.4-5.5 s passive or on one thread (README, Threads).
# Set OMP_WAIT_POLICY=ACTIVE to measure torch's default; machine facts record the value in force.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench_support.plugin.fixtures import (  # noqa: E402, F401 - fixtures are registered from this module
    _plain_benchmark_measures,
    ckpt_target_dir,
    continual_scenario,
    data_root,
    harness,
    image_datasets,
    loader_config,
    power_session,
    profile,
    suite,
    torch_device,
)
from bench_support.plugin.options import pytest_addoption  # noqa: E402, F401
from bench_support.plugin.params import pytest_generate_tests  # noqa: E402, F401
from bench_support.plugin.session import (  # noqa: E402, F401
    pytest_configure,
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_unconfigure,
)
from bench_support.plugin.storage import (  # noqa: E402, F401
    pytest_benchmark_compare_machine_info,
    pytest_benchmark_update_json,
    pytest_benchmark_update_machine_info,
)
from bench_support.plugin.terminal import pytest_report_header, pytest_terminal_summary  # noqa: E402, F401
