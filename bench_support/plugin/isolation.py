"""Each benchmark in a fresh process (``--isolate benchmark``; the quick and full profiles' default).

Two things a single long pytest process gets wrong, both measured (docs/methods.md, "Fresh processes"): a
benchmark's absolute memory depends on what ran before it in the process (glibc's heap layout, arenas, caches), and
the variance between processes, which a re-run sees, never shows in rounds taken in one process. asv and pyperf
answer both with a process per benchmark; so does this module, without paying an interpreter and torch import for
each (3.8 s on a 2-core VM): a *server* process, started once, collects the benchmarks and then forks one *worker*
per benchmark. A worker starts from exactly the state of a process that has only imported and collected (no
fixture built, no OpenMP pool started, nothing allocated by another benchmark), so the benchmark meets the same
process whether it runs alone or after the whole suite. Linux does not copy a parent's page-table entries of file
mappings at fork, so a worker would start up to 300 MB below the server's RSS (the library pages the server
touched); each worker maps those pages in first (``MADV_POPULATE_READ``, 33 ms), and its RSS starts where a
process that imported everything itself would be.

The parent pytest collects, orders (trials, power modes) and reports as usual. Its isolated items form *chunks*:
one benchmark each, or, in a module declaring ``ISOLATE = "trial"`` (checkpoint writes share the payloads they
write), the consecutive items of one trial pass. Messages go over two pipes, one JSON object per line:

    parent -> server   {"run": [nodeids], "earlier": {...}, "power_idle": [w, why]}   one chunk
    server -> parent   {"kind": "collected", "nodeids": [...]}     once, what the server can run
                       {"kind": "ready", "rss_mb": x}            once, its imports done: every worker's floor
    worker -> parent   {"kind": "started", "pid": n}
                       {"kind": "report", "report": {...}}       a test report, in pytest's serialisable form
                       {"kind": "line" | "redraw", ...}          live progress lines, drawn by the parent
                       {"kind": "end", "benchmarks": [...], "power": {...}}
    server -> parent   {"kind": "done", "status": "..."}         the worker is gone (how it ended)

Only one of server and worker writes at a time (the server waits for its worker), so lines never interleave. The
parent replays each report through its own hooks (terminal, junitxml, -x) and adopts the benchmarks into
pytest-benchmark's session, where trials are merged and the run saved as before.

Stopping: Ctrl-C or a stop signal reaches the parent (the server runs in a session of its own, so a terminal's
Ctrl-C or tox's second SIGINT never reach a worker twice); it sends the running worker one SIGINT, reads what the
worker finished, and stops as before. A server or worker whose parent dies gets SIGTERM from the kernel
(``PR_SET_PDEATHSIG``). A module that must share the session's process (the continual scenario keeps its outcome for
the run's summary and already fine-tunes in a worker process of its own) declares ``ISOLATE = False``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from bench_support.measure import memory
from bench_support.plugin import trials, upstream
from bench_support.plugin.state import CHILD, PASSED, POWER, POWER_IDLE, STATE, STOPS

#: The hidden option that makes a pytest process the server: the path of its spec.
CHILD_OPTION = "--edge-bench-child"
#: A worker told to stop has this long to hand over what it finished before it is killed.
STOP_GRACE_S = 60.0
#: Lines of the server's own output shown when it fails.
TAIL_LINES = 15


def isolation_of(item: pytest.Item) -> Optional[str]:
    """ "benchmark" or "trial" for a benchmark run in a fresh process, None for one run in the session's."""
    if "benchmark" not in getattr(item, "fixturenames", ()):
        return None
    declared = getattr(getattr(item, "module", None), "ISOLATE", "benchmark")
    return None if declared is False else ("trial" if declared == "trial" else "benchmark")


def chunk_key(item: pytest.Item):
    how = isolation_of(item)
    if how is None:
        return None
    if how == "benchmark":
        return item.nodeid
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    trial = trials.trial_of(item)
    return item.nodeid.split("::")[0], trial[0] if trial else 1, params.get("power_mode")


def chunks(items: List[pytest.Item]) -> List[List[str]]:
    """The isolated items as chunks of node ids: consecutive items with one key run in one worker."""
    out: List[List[str]] = []
    previous = None
    for item in items:
        key = chunk_key(item)
        if key is not None:
            if key == previous:
                out[-1].append(item.nodeid)
            else:
                out.append([item.nodeid])
        previous = key
    return out


# --- the parent ---------------------------------------------------------------------------------


class Stream:
    """JSON messages, one per line, read from a pipe as they come."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""
        self.eof = False

    def messages(self, deadline: Optional[float] = None) -> Iterator[dict]:
        """Until the stream ends (or ``deadline``, a monotonic time, passes)."""
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a torn line of a killed worker
            if self.eof:
                return
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return
            data = os.read(self.fd, 1 << 16)
            if not data:
                self.eof = True
            self._buffer += data

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class Server:
    """The server process: its stream, its command pipe, its log."""

    def __init__(self, proc: subprocess.Popen, stream: Stream, commands, log_path: str) -> None:
        self.proc, self.stream, self.commands, self.log_path = proc, stream, commands, log_path
        self.collected: Optional[List[str]] = None

    def send(self, command: dict) -> bool:
        try:
            self.commands.write(json.dumps(command) + "\n")
            self.commands.flush()
            return True
        except (OSError, ValueError):
            return False

    def exit_description(self) -> str:
        return describe_status(self.proc.wait())

    def tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-TAIL_LINES:])

    def close(self) -> None:
        try:
            self.commands.close()  # the server's loop ends at the end of its commands
        except OSError:
            pass
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stream.close()


class Chunk:
    """A chunk sent to the server: its node ids, its worker's pid once started, whether it is done."""

    def __init__(self, nodeids: List[str]) -> None:
        self.pending = nodeids
        self.pid: Optional[int] = None
        self.done: Optional[str] = None  # how its worker ended
        self.reported_any = False


def describe_status(code: int) -> str:
    """A Popen return code or ``waitpid`` status in words."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Runner:
    """Runs the session's isolated items in forked workers, chunk by chunk, and keeps what they return."""

    def __init__(self, config: pytest.Config, items: List[pytest.Item], sweep: Any = None) -> None:
        self.config, self.sweep = config, sweep
        self.chunk_of: Dict[str, List[str]] = {}
        for chunk in chunks(items):
            for nodeid in chunk:
                self.chunk_of[nodeid] = chunk
        self.server: Optional[Server] = None
        self.chunk: Optional[Chunk] = None
        self.started = 0
        self.tmp = tempfile.mkdtemp(prefix="edge-bench-server-")
        self.power_facts: Optional[dict] = None

    def runs(self, item: pytest.Item) -> bool:
        return item.nodeid in self.chunk_of

    # --- one item ---

    def protocol(self, item: pytest.Item) -> None:
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        try:
            self._run(item)
        except KeyboardInterrupt:
            self.stop()
            raise
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def _run(self, item: pytest.Item) -> None:
        if self.chunk is None or item.nodeid not in self.chunk.pending:
            self.stop()
            chunk = self.chunk_of[item.nodeid]
            self._send_chunk(item, chunk[chunk.index(item.nodeid) :])
        server, chunk = self.server, self.chunk
        if server is None or chunk is None:
            return  # _send_chunk failed the item
        if server.collected is not None and item.nodeid not in server.collected:
            self._fail(item, "was not collected in the fresh process (its selection differs there)")
            return
        for message in server.stream.messages():
            self._handle(message)
            report = message.get("report") if message.get("kind") == "report" else None
            if report and report.get("nodeid") == item.nodeid and report.get("when") == "teardown":
                break
            if chunk.done is not None:  # the worker ended before this item's teardown
                self._fail(item, f"its fresh process {chunk.done} before it finished")
                self.chunk = None
                return
        else:  # the server is gone
            self._server_gone(item)
            return
        if item.nodeid == chunk.pending[-1]:
            self._wait_done(chunk)

    def _send_chunk(self, item: pytest.Item, nodeids: List[str]) -> None:
        if self.server is None:
            self.server = self._start_server()
            for message in self.server.stream.messages():  # what it collected, then its imports done
                self._handle(message)
                if message.get("kind") == "ready":
                    break
            else:
                self._server_gone(item)
                return
        if self.sweep is not None:
            self.sweep.switched_elsewhere()  # the workers switch modes; this session restores the start
        command: Dict[str, Any] = {"run": nodeids, "earlier": self.config.stash.get(trials.EARLIER, {})}
        if POWER_IDLE in self.config.stash:
            command["power_idle"] = list(self.config.stash[POWER_IDLE])
        self.chunk = Chunk(nodeids)
        if not self.server.send(command):
            self._server_gone(item)

    def _server_gone(self, item: pytest.Item) -> None:
        server, chunk = self.server, self.chunk
        self.server, self.chunk = None, None
        if server is None:
            return
        how, tail = server.exit_description(), server.tail()
        server.stream.close()
        if chunk is None or not chunk.reported_any:
            why = f"the fresh-process server for {item.nodeid} {how} before running it"
            pytest.exit(
                f"edge-bench: {why} (--isolate none runs everything in one process)"
                + (f"; its output:\n{tail}" if tail else ""),
                returncode=pytest.ExitCode.INTERNAL_ERROR,
            )
        self._fail(item, f"the fresh-process server {how} before it finished", tail)

    def _handle(self, message: dict) -> None:
        kind = message.get("kind")
        chunk = self.chunk
        if kind == "collected" and self.server is not None:
            self.server.collected = list(message.get("nodeids") or [])
        elif kind == "ready" and isinstance(message.get("rss_mb"), (int, float)):
            # The RSS floor under every isolated result is the server's, its imports done, not this process's.
            state = self.config.stash[STATE]
            self.config.stash[STATE] = dataclasses.replace(state, rss_at_start_mb=message["rss_mb"])
        elif kind == "started" and chunk is not None:
            chunk.pid = int(message.get("pid") or 0) or None
        elif kind == "report":
            data = message["report"]
            if isinstance(data.get("longrepr"), list):  # a skip's (path, line, reason): JSON made the tuple a list
                data["longrepr"] = tuple(data["longrepr"])
            report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
            if report is None:
                return
            if chunk is not None:
                chunk.reported_any = True
            if report.when == "call" and report.passed:
                self.config.stash.setdefault(PASSED, set()).add(report.nodeid)
            self.config.hook.pytest_runtest_logreport(report=report)
        elif kind in ("line", "redraw"):
            from bench_support.plugin.terminal import live_writer, redraw_writer

            if kind == "line":
                live_writer(self.config)(str(message.get("text", "")))
            else:
                redraw_writer(self.config)(str(message.get("text", "")), bool(message.get("final")))
        elif kind == "end":
            self._adopt(message)
        elif kind == "done" and chunk is not None:
            chunk.done = str(message.get("status") or "ended")

    def _adopt(self, message: dict) -> None:
        adopted = upstream.adopt_benchmarks(self.config, message.get("benchmarks") or [])
        earlier = self.config.stash.setdefault(trials.EARLIER, {})
        for bench in adopted:
            earlier.setdefault(trials.base_name(bench), []).append(list(bench.stats.data))
        power = message.get("power")
        if power and self.power_facts is None:
            self.power_facts = power
            if power.get("source"):  # measured with a source: the next workers use this idle power
                self.config.stash.setdefault(POWER_IDLE, (power.get("idle_w"), power.get("idle_unavailable")))
            self.config.stash.setdefault(POWER, FactsOnly(power))

    def _wait_done(self, chunk: Chunk, deadline: Optional[float] = None) -> None:
        """Read the rest of the chunk (its ``end``) until the server says its worker is gone."""
        server = self.server
        if server is not None and chunk.done is None:
            for message in server.stream.messages(deadline):
                self._handle(message)
                if chunk.done is not None:
                    break
            else:
                if server.stream.eof:
                    self.server = None
                    server.stream.close()
        if self.chunk is chunk:
            self.chunk = None

    def _fail(self, item: pytest.Item, why: str, output: str = "") -> None:
        text = f"edge-bench: {item.nodeid} {why}" + (f"; its last output:\n{output}" if output else "")
        keywords = {name: 1 for name in item.keywords}
        report = pytest.TestReport(item.nodeid, item.location, keywords, "failed", text, "call")
        item.ihook.pytest_runtest_logreport(report=report)

    # --- the server ---

    def _start_server(self) -> Server:
        self.started += 1
        state = self.config.stash[STATE]
        read_fd, write_fd = os.pipe()
        cmd_read, cmd_write = os.pipe()
        spec = {
            "nodeids": sorted(self.chunk_of),
            "fd": write_fd,
            "cmd_fd": cmd_read,
            "parent_pid": os.getpid(),
            "tty": bool(getattr(self.config.pluginmanager.get_plugin("terminalreporter"), "isatty", False)),
        }
        spec_path = os.path.join(self.tmp, f"spec-{self.started}.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        log_path = os.path.join(self.tmp, f"server-{self.started}.log")
        args = [
            sys.executable, "-m", "pytest", *self.config.invocation_params.args,
            # Joined to its value: written apart, pytest would take the spec file for a test path and move the rootdir.
            f"--trial-seed={state.trial_seed}", "--isolate=none", f"{CHILD_OPTION}={spec_path}",
        ]  # fmt: skip
        if self.config.pluginmanager.has_plugin("cacheprovider"):  # --lf and friends: read, never written there
            args += ["-o", f"cache_dir={os.path.join(self.tmp, 'cache')}"]
        if getattr(self.config.option, "xmlpath", None):  # the parent writes the JUnit file from the replayed reports
            args += [f"--junitxml={os.path.join(self.tmp, 'junit.xml')}"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args,
                cwd=str(self.config.invocation_params.dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd, cmd_read),
                start_new_session=True,  # one SIGINT, the parent's, never the terminal's and tox's twice
            )
        os.close(write_fd)
        os.close(cmd_read)
        return Server(proc, Stream(read_fd), os.fdopen(cmd_write, "w", encoding="utf-8"), log_path)

    def stop(self) -> None:
        """Stop the running worker, if any: one SIGINT, then what it finished is read and kept."""
        chunk = self.chunk
        if chunk is None:
            return
        stops = self.config.stash.get(STOPS, None)
        if stops is not None:
            stops.shield()  # a second signal must not cut the read of what the worker hands over
        if chunk.pid and chunk.done is None:
            try:
                os.kill(chunk.pid, signal.SIGINT)
            except OSError:
                pass
        try:
            self._wait_done(chunk, deadline=time.monotonic() + STOP_GRACE_S)
        except KeyboardInterrupt:  # no handlers to shield with (not the main thread): end it now
            self._kill()
        if chunk.done is None:  # it did not hand over in time
            self._kill()
        self.chunk = None

    def _kill(self) -> None:
        server, self.server, self.chunk = self.server, None, None
        if server is not None:
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)  # the server and its worker
            except OSError:
                pass
            server.proc.wait()
            server.stream.close()

    def close(self) -> None:
        self.stop()
        if self.server is not None:
            self.server.close()
            self.server = None
        shutil.rmtree(self.tmp, ignore_errors=True)


class FactsOnly:
    """The power facts a worker measured with, standing in for a PowerSession the parent never opened."""

    def __init__(self, facts: Dict[str, Any]) -> None:
        self._facts = dict(facts)

    def facts(self) -> Dict[str, Any]:
        return dict(self._facts)


# --- the server and its workers -----------------------------------------------------------------


class Sink:
    """The writing end of the stream: one JSON message per line, written at once."""

    def __init__(self, fd: int) -> None:
        self._fh = os.fdopen(fd, "w", encoding="utf-8", buffering=1)

    def __call__(self, message: dict) -> None:
        try:
            self._fh.write(json.dumps(message, default=repr) + "\n")
            self._fh.flush()
        except (OSError, ValueError):
            pass  # the parent is gone: PR_SET_PDEATHSIG ends this process


def configure_child(config: pytest.Config) -> None:
    """This process is the server: read its spec, open the stream, die with the parent."""
    path = config.getoption("edge_bench_child")
    if not path:
        return
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    _die_with_parent(int(spec.get("parent_pid", 0)))
    sink = Sink(int(spec["fd"]))
    config.stash[CHILD] = (spec, sink)
    config.pluginmanager.register(_Reports(config, sink), "edge-bench-child-reports")


def _die_with_parent(parent_pid: int) -> None:
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


def child_sink(config: pytest.Config) -> Optional[Callable[[dict], None]]:
    found = config.stash.get(CHILD, None)
    return found[1] if found is not None else None


def child_tty(config: pytest.Config) -> bool:
    found = config.stash.get(CHILD, None)
    return bool(found and found[0].get("tty"))


def narrow(config: pytest.Config, items: List[pytest.Item]) -> None:
    """In the server: only the items the parent runs in fresh processes (the rest deselected)."""
    found = config.stash.get(CHILD, None)
    if found is None:
        return
    spec, sink = found
    wanted = set(spec["nodeids"])
    dropped = [item for item in items if item.nodeid not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = [item for item in items if item.nodeid in wanted]
    sink({"kind": "collected", "nodeids": [item.nodeid for item in items]})


class _Reports:
    """Registered in the server (and so in its workers): every test report goes to the parent as it is made."""

    def __init__(self, config: pytest.Config, sink: Sink) -> None:
        self.config, self.sink = config, sink

    def pytest_runtest_logreport(self, report) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.sink({"kind": "report", "report": data})


def serve(session: pytest.Session) -> None:
    """The server's loop: for each chunk the parent sends, fork a worker to run it, and say how it ended."""
    config = session.config
    spec, sink = config.stash[CHILD]
    by_id = {item.nodeid: item for item in session.items}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers, not the server
    _preload()
    resident = memory.resident_file_ranges()  # what each worker maps in at its start
    sink({"kind": "ready", "rss_mb": round(memory.rss_now_mb(), 1)})  # the floor every worker starts from
    with os.fdopen(int(spec["cmd_fd"]), encoding="utf-8") as commands:
        for line in commands:
            try:
                command = json.loads(line)
            except ValueError:
                continue
            items = [by_id[n] for n in command.get("run", []) if n in by_id]
            server_pid = os.getpid()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the worker leaves with os._exit; its reports are what is tested
                _work(session, items, command, server_pid, resident)
            _, status = os.waitpid(pid, 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            sink({"kind": "done", "status": describe_status(code)})


#: Imported by the server before it forks: what the workloads import on first use (torchvision alone took 2.0 s of
#: every worker's first benchmark) and torch, which the speed probe around every benchmark needs, also in a project
#: of one's own that never imports it. Imports only: no fixture, no tensor, no thread is made before a fork.
PRELOAD = ("torch", "torchvision", "torchvision.models", "torchvision.transforms", "PIL.Image",
           "bench_support.workloads", "bench_support.measure")  # fmt: skip


def _preload() -> None:
    import importlib
    import pkgutil

    for name in PRELOAD:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the benchmark that needs it reports the failure itself
            continue
        for found in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
            if not found.name.endswith("__main__"):
                try:
                    importlib.import_module(found.name)
                except Exception:  # noqa: BLE001 - as above
                    pass


def _work(session: pytest.Session, items: List[pytest.Item], command: dict, server_pid: int, resident) -> None:
    """A worker: run ``items`` from the server's pristine state, hand over what finished, leave."""
    config = session.config
    # Its RSS starts where the server's is, as a process that had imported everything itself would: fork leaves the
    # library pages the server touched out of the worker's page tables until touched again.
    memory.map_in(resident)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with_parent(server_pid)
    sink = child_sink(config)
    sink({"kind": "started", "pid": os.getpid()})
    config.stash[trials.EARLIER] = {k: [list(r) for r in v] for k, v in (command.get("earlier") or {}).items()}
    if command.get("power_idle") is not None:
        idle_w, reason = command["power_idle"]
        config.stash[POWER_IDLE] = (idle_w, reason)
    status = 0
    try:
        try:
            for i, item in enumerate(items):
                nextitem = items[i + 1] if i + 1 < len(items) else None
                item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                if session.shouldfail or session.shouldstop:
                    break
        finally:
            upstream.teardown_all(session)  # after an interrupt too: checkpoint folders, power sources
    except KeyboardInterrupt:
        status = 2
        upstream.drop_unfinished(config, config.stash.get(PASSED, set()))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it; the worker must still hand over
        status = 3
        sink({"kind": "line", "text": f"edge-bench: worker error: {type(exc).__name__}: {exc}"})
    finish_child(config)
    os._exit(status)


def finish_child(config: pytest.Config) -> None:
    """The finished benchmarks go to the parent, and nothing is saved here."""
    sink = child_sink(config)
    if sink is None:
        return
    power = config.stash.get(POWER, None)
    sink(
        {
            "kind": "end",
            "benchmarks": upstream.benchmarks_as_dicts(config),
            "power": power.facts() if power is not None else None,
        }
    )
    upstream.forget_benchmarks(config)
