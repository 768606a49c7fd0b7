"""The fresh-process server and its workers (``--isolate benchmark``): the other side of plugin/isolation.py.

The server is a pytest process started by the session with the session's own arguments and
``--edge-bench-child=SPEC``. It collects as the session did, keeps the items the session runs in fresh processes,
imports what the workloads import on first use, and then forks one worker per chunk the session sends. A worker
runs its chunk's items with pytest's own run-test protocol, streams each report and each finished result over the
pipe as it comes, and leaves with ``os._exit``: nothing of a worker survives it, and the server never runs a
benchmark itself. What is never done in the server before a fork: a fixture, a tensor, a thread, a CUDA call (a
child of a process that initialised CUDA cannot use it): the server's environment asks torch to check for a GPU
through NVML, and the project's conftest skips its GPU check there (the session made it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any, Callable, List, Optional

import pytest

from bench_support.measure import memory
from bench_support.plugin import trials, upstream
from bench_support.plugin.state import CHILD, PASSED, POWER, POWER_IDLE

#: The hidden option that makes a pytest process the server: the path of its spec.
CHILD_OPTION = "--edge-bench-child"
#: Set in the server's environment (and so its workers'): the project's conftest skips its torch/GPU check there.
SERVER_ENV = "EDGE_BENCH_SERVER"

#: Imported by the server before it forks: what the workloads import on first use (torchvision alone took 2.0 s of
#: every worker's first benchmark), and torch, which the speed probe around every benchmark needs also in a project
#: of one's own that never imports it. Each module itself, never its package's every submodule (torch's would
#: include test helpers that query CUDA). The suite's own workload and instrument modules are walked.
PRELOAD = ("torch", "torchvision", "torchvision.models", "torchvision.transforms", "PIL.Image")
WALKED = ("bench_support.workloads", "bench_support.measure")


def _unserializable(value: Any) -> str:
    """What pytest-benchmark saves for a value JSON cannot hold (``extra_info`` of any object), so a result saved
    from a fresh process reads as one saved from pytest's own."""
    return f"UNSERIALIZABLE[{value!r}]"


class Sink:
    """The writing end of the stream: one JSON message per line, written at once."""

    def __init__(self, fd: int) -> None:
        self._fh = os.fdopen(fd, "w", encoding="utf-8", buffering=1)

    def __call__(self, message: dict) -> None:
        self.write(json.dumps(message, default=_unserializable) + "\n")

    def write(self, text: str) -> None:
        try:
            self._fh.write(text)
            self._fh.flush()
        except (OSError, ValueError):
            pass  # the session is gone: PR_SET_PDEATHSIG ends this process


def configure(config: pytest.Config) -> None:
    """This process is the server: read its spec, open the stream, die with the session."""
    path = config.getoption("edge_bench_child")
    if not path:
        return
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    die_with_parent(int(spec.get("parent_pid", 0)))
    sink = Sink(int(spec["fd"]))
    config.stash[CHILD] = (spec, sink)
    config.pluginmanager.register(_Reports(config, sink), "edge-bench-server-reports")


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM to this process when its parent dies (Linux); at once if it already has."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid and os.getppid() != parent_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def sink_of(config: pytest.Config) -> Optional[Callable[[dict], None]]:
    """The stream to the session, in the server and its workers; None elsewhere."""
    found = config.stash.get(CHILD, None)
    return found[1] if found is not None else None


def session_on_tty(config: pytest.Config) -> bool:
    found = config.stash.get(CHILD, None)
    return bool(found and found[0].get("tty"))


def narrow(config: pytest.Config, items: List[pytest.Item]) -> None:
    """In the server: only the items the session runs in fresh processes (the rest deselected)."""
    found = config.stash.get(CHILD, None)
    if found is None:
        return
    wanted = set(found[0]["nodeids"])
    dropped = [item for item in items if item.nodeid not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = [item for item in items if item.nodeid in wanted]


class _Reports:
    """Registered in the server (and so in its workers): every test report goes to the session as it is made."""

    def __init__(self, config: pytest.Config, sink: Sink) -> None:
        self.config, self.sink = config, sink

    def pytest_runtest_logreport(self, report) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.sink({"kind": "report", "report": data})

    def pytest_warning_recorded(self, warning_message, when, nodeid, location) -> None:
        if when != "runtest":  # the server's own collection warnings: the session collected and warned itself
            return
        category = warning_message.category
        self.sink({
            "kind": "warning", "nodeid": nodeid, "message": str(warning_message.message),
            "category": f"{category.__module__}:{category.__qualname__}",
            "filename": str(warning_message.filename), "lineno": int(warning_message.lineno or 0),
        })  # fmt: skip


def serve(session: pytest.Session) -> None:
    """The server's loop: for each chunk the session sends, fork a worker to run it, and say how it ended."""
    config = session.config
    spec, sink = config.stash[CHILD]
    by_id = {item.nodeid: item for item in session.items}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the session stops workers, not the server
    _preload()
    upstream.basetemp(config)  # made once here: every worker's tmp_path goes under it, none wipes another's
    resident = memory.resident_file_ranges()  # what each worker maps in at its start
    sink({"kind": "collected", "nodeids": list(by_id)})  # after every plugin's selection
    sink({"kind": "ready", "rss_mb": round(memory.rss_now_mb(), 1), "threads": threading.active_count()})
    with os.fdopen(int(spec["cmd_fd"]), encoding="utf-8") as commands:
        for line in commands:
            try:
                command = json.loads(line)
            except ValueError:
                continue
            items = [by_id[n] for n in command.get("run", []) if n in by_id]
            server_pid = os.getpid()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the worker always leaves here; its reports are what the tests check
                code = 3
                try:
                    code = _work(session, items, command, server_pid, resident)
                except BaseException:  # noqa: BLE001 - a worker must never return into the server's session
                    pass
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            sink.write("\n")  # ends a line a killed worker left half-written; blank lines are skipped
            sink({"kind": "done", "code": code})


def _preload() -> None:
    """Import once, here, what the benchmarks would otherwise import in each worker. torch always: every result's
    speed probe runs on it. torchvision's model zoo and transforms and the suite's workloads and instruments only where
    the collected modules brought torch in themselves (the suite's own benchmarks do): a project of the user's that
    never uses them keeps them out of the server, and so out of the floor under every worker's RSS, as it does in one
    process."""
    import importlib
    import pkgutil

    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # a GPU check never initialises CUDA here
    if "torch" not in sys.modules:
        try:
            importlib.import_module("torch")
        except Exception:  # noqa: BLE001 - the benchmark that needs it reports the failure itself
            pass
        return
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the benchmark that needs it reports the failure itself
            pass
    for name in WALKED:
        try:
            package = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - as above
            continue
        for found in pkgutil.walk_packages(package.__path__, name + ".", onerror=lambda _name: None):
            if not found.name.endswith("__main__"):
                try:
                    importlib.import_module(found.name)
                except Exception:  # noqa: BLE001 - as above
                    pass


def _work(session: pytest.Session, items: List[pytest.Item], command: dict, server_pid: int, resident) -> int:
    """A worker: run ``items`` from the server's pristine state, hand over each result as it finishes; the exit
    status (0, 2 after an interrupt, 3 after an error of its own)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = session.config
    sink = sink_of(config)
    status = 0
    try:
        die_with_parent(server_pid)
        # Its RSS starts where the server's is, as a process that had imported everything itself would: fork leaves
        # the library pages the server touched out of the worker's page tables until they are touched again.
        memory.map_in(resident)
        sink({"kind": "started", "pid": os.getpid()})
        config.stash[trials.EARLIER] = {k: [list(r) for r in v] for k, v in (command.get("earlier") or {}).items()}
        config.stash[trials.MODULE_MEDIANS] = {k: list(v) for k, v in (command.get("module_medians") or {}).items()}
        if command.get("power_idle") is not None:
            idle_w, reason = command["power_idle"]
            config.stash[POWER_IDLE] = (idle_w, reason)
        try:
            for i, item in enumerate(items):
                nextitem = items[i + 1] if i + 1 < len(items) else None
                item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                _hand_over(config, sink)
                if session.shouldfail or session.shouldstop:
                    break
        finally:
            upstream.teardown_all(session)  # after an interrupt too: checkpoint folders, power sources
    except KeyboardInterrupt:
        status = 2
        upstream.drop_unfinished(config, config.stash.get(PASSED, set()))
    except BaseException as exc:  # noqa: BLE001 - the session reports it; the worker must still hand over
        status = 3
        sink({"kind": "line", "text": f"edge-bench: worker error: {type(exc).__name__}: {exc}"})
    try:
        _hand_over(config, sink)
        power = config.stash.get(POWER, None)
        sink({"kind": "end", "power": power.facts() if power is not None else None})
    except BaseException:  # noqa: BLE001 - a second interrupt while handing over: what went, went
        status = status or 2
    return status


def _hand_over(config: pytest.Config, sink: Callable[[dict], None]) -> None:
    """The results finished since the last hand-over go to the session (a later crash cannot take them)."""
    finished = upstream.benchmarks_as_dicts(config)
    if finished:
        sink({"kind": "results", "benchmarks": finished})
    upstream.forget_benchmarks(config)
