"""What the suite says on the terminal: the header, live progress lines, the end-of-run summary."""

from __future__ import annotations

from typing import Callable

import pytest

from bench_support.plugin import server, upstream
from bench_support.plugin.progress import Bar
from bench_support.plugin.state import COMPARED_WITH, CONTINUAL, INTERRUPTED, SAVE_PROBLEMS, STATE
from bench_support.report.precision import precision_text, run_precision
from bench_support.report.summary import fastest_loader_line, fastest_loaders
from bench_support.report.validity import flag, validity


def live_writer(config: pytest.Config) -> Callable[[str], None]:
    """Writes a line to the terminal during a test, captured output or not (no -s needed); in a fresh-process
    worker (plugin/server.py), to the session, which writes it."""
    sink = server.sink_of(config)
    if sink is not None:
        return lambda line: sink({"kind": "line", "text": line})
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
            reporter.flush()  # into a pipe (tox, CI, `| tee`) the line must arrive now, not when the test ends

    return write


def bar_writer(config: pytest.Config, unit: str = "") -> Callable[[str], Bar]:
    """label -> a (done, total) progress :class:`Bar`: in place on a terminal, a line per quarter elsewhere."""
    write = live_writer(config)
    sink = server.sink_of(config)
    if sink is not None:  # the session draws it, in place if it is on a terminal
        redraw = lambda text, final: sink({"kind": "redraw", "text": text, "final": final})  # noqa: E731
        on_terminal = server.session_on_tty(config)
    else:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        redraw = redraw_writer(config)
        on_terminal = reporter is not None and capture is not None and getattr(reporter, "isatty", False)
    return lambda label: Bar(label, lambda text: write("edge-bench: " + text), redraw if on_terminal else None, unit)


def redraw_writer(config: pytest.Config) -> Callable[[str, bool], None]:
    """(text, final) -> the progress line rewritten in place on the terminal (``final``: then ended)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def redraw(text: str, final: bool) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()  # off pytest's progress line ("benchmarks/test_x.py ..")
            reporter.rewrite("edge-bench: " + text, erase=True)
            if final:
                reporter.write("\n")
            reporter.flush()

    return redraw


def progress_writer(config: pytest.Config) -> Callable[[str], Bar]:
    """label -> a (done, total) callback showing dataset generation."""
    bars = bar_writer(config, "images")
    return lambda label: bars(f"generating {label}")


def pytest_report_header(config: pytest.Config):
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    profile = state.profile
    precision = ""
    if profile.precision_target is not None:
        precision = (
            f", precision target ±{profile.precision_target * 100:g}% with {profile.round_budget_s:g} s of extra rounds"
        )
    lines = [
        f"edge-bench: device {state.device_id}, platform {state.platform}, profile {profile.name}{precision}",
        f"edge-bench: data in {state.data_dir}" + (f", CIFAR-10 from {state.cifar_root}" if state.cifar_root else ""),
    ]
    if state.results_dir:
        lines.append(f"edge-bench: results saved under {state.results_dir}")
    compared = config.stash.get(COMPARED_WITH, "")
    if compared:
        lines.append(f"edge-bench: {compared}")
    return lines


def as_saved(bench) -> dict:
    """A live pytest-benchmark result in the shape the saved run gives it, for the report's judges."""
    stats = getattr(bench, "stats", None)
    return {
        "name": getattr(bench, "name", "?"),
        "group": getattr(bench, "group", None),
        "stats": {
            **({k: getattr(stats, k, None) for k in ("rounds", "iqr", "median")} if stats else {}),
            "data": list(getattr(stats, "data", None) or []),
        },
        "extra_info": getattr(bench, "extra_info", {}),
    }


def flagged_lines(benchmarks, profile_name: str):
    """One line per result that is invalid or ran under measured interference, saying why; then the run's
    precision as a whole, where its profile has a target."""
    saved = [as_saved(bench) for bench in benchmarks]
    for bench in saved:
        v = validity(bench, profile_name)
        why = v["invalid_reasons"] + ([v["precision_reason"]] if v["noisy"] else []) + v["conditions"]
        if why:
            yield f"{bench['name']}{flag(v)}: {'; '.join(why)}"
    found = run_precision(saved, profile_name)
    if found is not None and found.imprecise:
        yield f"precision: {precision_text(found)}"


def asked_power_line(backend: str, benchmarks) -> str:
    """A line where ``--power-backend`` named a source and no result got power from it, with the reason the results
    record; "" otherwise (``auto`` finding nothing is the common case on a laptop or VM, said in each result)."""
    if backend == "auto":
        return ""
    infos = [getattr(bench, "extra_info", None) or {} for bench in benchmarks]
    if not infos or any(info.get("power_source") for info in infos):
        return ""
    reasons = sorted({str(info["power_unavailable"]) for info in infos if info.get("power_unavailable")})
    why = "; ".join(reasons) or "no reason recorded"
    return f"power: --power-backend {backend} gave no power to any result ({why})"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    session = upstream.benchmark_session(config)
    state = config.stash.get(STATE, None)
    if state is not None:
        for line in flagged_lines(getattr(session, "benchmarks", None) or [], state.profile.name):
            terminalreporter.write_line(f"edge-bench: {line}")
    if state is not None:
        line = asked_power_line(state.power_backend, getattr(session, "benchmarks", None) or [])
        if line:
            terminalreporter.write_line(f"edge-bench: {line}", yellow=True)
    by_size = fastest_loaders(getattr(session, "benchmarks", None) or [])
    for best in by_size.values():
        terminalreporter.write_line(f"edge-bench: {fastest_loader_line(best, with_size=len(by_size) > 1)}")
    outcome = config.stash.get(CONTINUAL, None)
    for line in outcome.terminal_lines() if outcome is not None else []:
        terminalreporter.write_line(f"edge-bench: {line}")
    if config.stash.get(INTERRUPTED, False):
        count = len(getattr(session, "benchmarks", None) or [])
        terminalreporter.write_line(f"edge-bench: the run was interrupted; {count} finished benchmark(s) kept")
    for problem in config.stash.get(SAVE_PROBLEMS, []):
        terminalreporter.write_line(f"edge-bench: ERROR: {problem}", red=True, bold=True)
