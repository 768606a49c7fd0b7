"""The suite's pytest face: options, state, storage hooks, fixtures, terminal output.

Registered as the installed package's ``pytest11`` entry point (pyproject.toml), so it loads into every pytest
run of its environment; inert unless the session collects a benchmark (options are parsed, nothing installed
or written).
Imported by nothing else in the library: benchmarks receive what they need through fixtures, the library never
reaches back up here. Importing it imports no torch (the workloads load when a fixture needs them).

    options.py   command-line options, checked at parse time by ``type=`` parsers
    state.py     the frozen SuiteState built from them (the ``suite`` fixture)
    session.py   configure, Unavailable/UserError as skip/one-line failure, the exit
    signals.py   SIGTERM and SIGHUP stop a run as Ctrl-C does; a save in progress is not torn by a second signal
    params.py    each benchmark parametrised from its module's GRID for the profile; modules run on request
    trials.py    every benchmark in interleaved trials, each in a seeded order, merged before saving
    isolation.py each benchmark in a fresh process: the session's side (chunks, replayed reports, results)
    server.py    the fresh-process server, which collects and imports once and forks a worker per benchmark
    storage.py   --save-results as a device folder, the baseline, machine facts, the saved JSON's suite block
    upstream.py  every use of pytest's and pytest-benchmark's internals, each with the change that would end it
    fixtures.py  suite, profile, image_datasets, harness, power_session, ...
    terminal.py  header, live progress lines, end-of-run summary
"""

from bench_support.plugin.fixtures import (  # noqa: F401 - fixtures are registered from this module
    _plain_benchmark_measures,
    ckpt_target_dir,
    continual_scenario,
    data_root,
    harness,
    image_datasets,
    loader_config,
    power_mode,
    power_session,
    profile,
    say,
    single_rank_throughput,
    suite,
    torch_device,
)
from bench_support.plugin.options import pytest_addoption  # noqa: F401
from bench_support.plugin.params import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_generate_tests,
    pytest_ignore_collect,
    pytest_report_collectionfinish,
)
from bench_support.plugin.session import (  # noqa: F401
    pytest_collection_finish,
    pytest_configure,
    pytest_keyboard_interrupt,
    pytest_load_initial_conftests,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_runtest_setup,
    pytest_runtestloop,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_unconfigure,
)
from bench_support.plugin.storage import (  # noqa: F401
    pytest_benchmark_compare_machine_info,
    pytest_benchmark_update_json,
    pytest_benchmark_update_machine_info,
)
from bench_support.plugin.terminal import pytest_report_header, pytest_terminal_summary  # noqa: F401
from bench_support.plugin.trials import edge_bench_trial  # noqa: F401
