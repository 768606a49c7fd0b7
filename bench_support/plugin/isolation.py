"""Each benchmark in a fresh process (``--isolate benchmark``): the session's side. The server's is plugin/server.py.

Two things a single long pytest process gets wrong, both measured (docs/methods.md, "Fresh processes"): a
benchmark's absolute memory depends on what ran before it in the process (glibc's heap layout, arenas, caches), and
the variance between processes, which a re-run sees, never shows in rounds taken in one process. asv and pyperf
answer both with a process per benchmark; so does the suite, without paying an interpreter and a torch import for
each (3.8 s on a 2-core VM): a *server* process, started once, collects and imports and then forks one *worker* per
benchmark, so every benchmark meets the same process whether it runs alone or after the whole suite.

The session collects, orders (trials) and reports as usual. Its isolated items form *chunks*: one benchmark each,
or, in a module declaring ``ISOLATE = "trial"`` (checkpoint writes share the payloads they write), the consecutive
items of one trial pass. Messages go over two pipes, one JSON object per line:

    session -> server  {"run": [nodeids], "earlier": {...}, "module_medians": {...}, "power_idle": [w, why]}
                                                                one chunk
    server -> session  {"kind": "collected", "nodeids": [...]}   once, what it can run
                       {"kind": "ready", "rss_mb": x}           once, its imports done: every worker's floor
    worker -> session  {"kind": "started", "pid": n}
                       {"kind": "report", "report": {...}}      a test report, in pytest's serialisable form
                       {"kind": "results", "benchmarks": [...]} each item's results once it finished
                       {"kind": "line" | "redraw", ...}         live progress lines, drawn by the session
                       {"kind": "end", "power": {...}}
    server -> session  {"kind": "done", "code": n}              the worker is gone, with its exit status

Only one of server and worker writes at a time (the server waits for its worker), so lines never interleave; the
server ends a line a killed worker left half-written before it writes ``done``. The session replays each report
through its own hooks (terminal, junitxml, -x) and adopts the results into pytest-benchmark's session, where trials
are merged and the run saved as before.

Stopping: Ctrl-C or a stop signal reaches the session (the server runs in a session of its own, so a terminal's
Ctrl-C or tox's second SIGINT never reach a worker twice); it sends the running worker one SIGINT, reads what the
worker finished, kills the server, and stops as before. A server or worker whose parent dies gets SIGTERM from the
kernel (``PR_SET_PDEATHSIG``). A module that must share the session's process (the continual scenario keeps its
outcome for the run's summary and already fine-tunes in a worker process of its own) declares ``ISOLATE = False``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Dict, Iterator, List, Optional

import pytest

from bench_support import leftovers
from bench_support.plugin import server as server_side
from bench_support.plugin import trials, upstream
from bench_support.plugin.state import PASSED, POWER, POWER_IDLE, STATE, STOPS
from bench_support.trials import without_trial

#: A worker told to stop has this long to hand over what it finished before it is killed.
STOP_GRACE_S = 60.0
STOP_QUIET_S = 5.0  # how long a stop waits for a worker before it says so
#: Lines of the server's own output shown when it fails.
TAIL_LINES = 15
#: A server that dies this often (after it was ready) ends the run: something kills it, not a benchmark.
SERVER_DEATHS_MAX = 3


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
    trial = trials.trial_of(item)
    return item.nodeid.split("::")[0], trial[0] if trial else 1


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


def describe_status(code: int) -> str:
    """A Popen return code (or the server's ``done`` code) in words."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Stream:
    """JSON messages, one per line, read from a pipe as they come."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)
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
                        continue  # the half-written line of a killed worker
            if self.eof:
                return
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._selector.select(timeout):
                return
            data = os.read(self.fd, 1 << 16)
            if not data:
                self.eof = True
            self._buffer += data

    def close(self) -> None:
        self._selector.close()
        try:
            os.close(self.fd)
        except OSError:
            pass


class Server:
    """The server process: its stream, its command pipe, its log."""

    def __init__(self, proc: subprocess.Popen, stream: Stream, commands: Any, log_path: str) -> None:
        self.proc, self.stream, self.commands, self.log_path = proc, stream, commands, log_path
        self.collected: Optional[List[str]] = None
        self.ready = False

    def send(self, command: dict) -> bool:
        try:
            self.commands.write(json.dumps(command) + "\n")
            self.commands.flush()
            return True
        except (OSError, ValueError):
            return False

    def tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-TAIL_LINES:])

    def kill(self) -> str:
        """End it and its worker now (it holds nothing to save); how it had ended, if it had."""
        ended = self.proc.poll()
        try:
            self.commands.close()
        except OSError:
            pass
        if ended is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and its worker
            except OSError:
                pass
        self.proc.wait()
        self.stream.close()
        return describe_status(ended) if ended is not None else "was stopped"


class Chunk:
    """A chunk sent to the server: its node ids, its worker's pid once started, its exit once gone."""

    def __init__(self, nodeids: List[str]) -> None:
        self.pending = nodeids
        self.pid: Optional[int] = None
        self.code: Optional[int] = None  # the worker's exit status, once the server reported it
        self.phases: Dict[str, set] = {}  # node id -> the phases reported

    @property
    def done(self) -> bool:
        return self.code is not None


class Runner:
    """Runs the session's isolated items in forked workers, chunk by chunk, and keeps what they return."""

    def __init__(self, config: pytest.Config, items: List[pytest.Item]) -> None:
        self.config = config
        self.chunk_of: Dict[str, List[str]] = {}
        for chunk in chunks(items):
            for nodeid in chunk:
                self.chunk_of[nodeid] = chunk
        self.server: Optional[Server] = None
        self.chunk: Optional[Chunk] = None
        self.started = 0
        self.deaths = 0
        self.stopping = False
        # Named after this process, so a later run reaps it when this one was killed (leftovers.reap).
        self.tmp = tempfile.mkdtemp(prefix=f"edge-bench-srv-{leftovers.owner_tag()}-")
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
        chunk = self.chunk
        if chunk is None or chunk.done or item.nodeid not in chunk.pending:
            if chunk is not None:
                self._finish(chunk)  # what is left of the last one (it ran a selection this session skipped)
            whole = self.chunk_of[item.nodeid]
            if not self._send(item, whole[whole.index(item.nodeid) :]):
                return
        server, chunk = self.server, self.chunk
        if server is None or chunk is None:
            return
        if item.nodeid not in (server.collected or ()):
            self._fail(item, "was not collected in the fresh process (its selection differs there)")
            return
        for message in server.stream.messages():
            self._handle(message)
            report = message.get("report") if message.get("kind") == "report" else None
            if report and report.get("nodeid") == item.nodeid and report.get("when") == "teardown":
                break
            if chunk.done:
                self.chunk = None
                if chunk.code == 2 and not self.stopping:
                    # A KeyboardInterrupt in the worker that this session did not send (the benchmark's own code
                    # raised it, or someone signalled the worker): the run stops, as in one process.
                    raise KeyboardInterrupt
                self._fail(item, f"its fresh process {describe_status(chunk.code)} before it finished", chunk)
                return
        else:
            self._server_died(item)
            return
        if item.nodeid == chunk.pending[-1]:
            self._finish(chunk)

    def _send(self, item: pytest.Item, nodeids: List[str]) -> bool:
        """Send a chunk to the server (started first if there is none); False if the item could not be run."""
        if self.server is None:
            self.server = self._start_server()
            for message in self.server.stream.messages():
                self._handle(message)
                if self.server.ready:
                    break
            else:
                self._server_died(item)
                return False
        earlier = self.config.stash.get(trials.EARLIER, {})
        bases = {without_trial(n) for n in nodeids}  # only the chunk's own: the whole run's would grow
        command: Dict[str, Any] = {"run": nodeids, "earlier": {k: v for k, v in earlier.items() if k in bases}}
        # the rest of the chunk's modules as trial medians only: enough for the spread between trials (Precision)
        command["module_medians"] = trials.module_medians(self.config, {trials.module_of(b) for b in bases}, bases)
        if POWER_IDLE in self.config.stash:
            command["power_idle"] = list(self.config.stash[POWER_IDLE])
        self.chunk = Chunk(nodeids)
        if not self.server.send(command):
            self._server_died(item)
            return False
        return True

    def _server_died(self, item: pytest.Item) -> None:
        """The server's stream ended: fail the item; end the run if it never got ready or keeps dying."""
        server, chunk = self.server, self.chunk
        self.server, self.chunk = None, None
        if server is None:
            return
        ready, tail, how = server.ready, server.tail(), server.kill()
        self.deaths += 1
        if not ready or self.deaths >= SERVER_DEATHS_MAX:
            why = f"the fresh-process server {how} " + ("before it was ready" if not ready else f"{self.deaths} times")
            pytest.exit(
                f"edge-bench: {why} (--isolate none runs everything in one process)"
                + (f"; its output:\n{tail}" if tail else ""),
                returncode=pytest.ExitCode.INTERNAL_ERROR,
            )
        self._fail(item, f"its fresh-process server {how} before it finished", chunk, tail)

    def _finish(self, chunk: Chunk, deadline: Optional[float] = None) -> None:
        """Read the rest of a chunk (its results, its ``end``) until the server says its worker is gone."""
        self._read(chunk, deadline)
        if self.chunk is chunk:
            self.chunk = None

    def _read(self, chunk: Chunk, deadline: Optional[float]) -> None:
        server = self.server
        if server is not None and not chunk.done:
            for message in server.stream.messages(deadline):
                self._handle(message)
                if chunk.done:
                    break
            else:
                if server.stream.eof:  # the server died with the worker: the next chunk starts another
                    self.server = None
                    self.deaths += 1
                    server.kill()

    def _handle(self, message: dict) -> None:
        kind = message.get("kind")
        chunk, server = self.chunk, self.server
        if kind == "collected" and server is not None:
            server.collected = list(message.get("nodeids") or [])
        elif kind == "ready" and server is not None:
            server.ready = True
            if isinstance(message.get("rss_mb"), (int, float)):  # the floor under every isolated result
                state = self.config.stash[STATE]
                self.config.stash[STATE] = dataclasses.replace(state, rss_at_start_mb=message["rss_mb"])
        elif kind == "started" and chunk is not None:
            chunk.pid = int(message.get("pid") or 0) or None
            if self.stopping and chunk.pid:  # asked to stop before the worker had said who it is
                _interrupt(chunk.pid)
        elif kind == "report":
            self._replay(message["report"], chunk)
        elif kind == "results":
            self._adopt(message.get("benchmarks") or [])
        elif kind == "warning":  # shown in the session's warnings summary, as a warning of this process would be
            self.config.hook.pytest_warning_recorded.call_historic(
                kwargs=dict(warning_message=_warning(message), when="runtest", nodeid=message.get("nodeid", ""),
                            location=None)
            )  # fmt: skip
        elif kind in ("line", "redraw"):
            from bench_support.plugin.terminal import live_writer, redraw_writer

            if kind == "line":
                live_writer(self.config)(str(message.get("text", "")))
            else:
                redraw_writer(self.config)(str(message.get("text", "")), bool(message.get("final")))
        elif kind == "end":
            self._power(message.get("power"))
        elif kind == "done" and chunk is not None:
            chunk.code = int(message.get("code", 3))

    def _replay(self, data: dict, chunk: Optional[Chunk]) -> None:
        if isinstance(data.get("longrepr"), list):  # a skip's (path, line, reason): JSON made the tuple a list
            data["longrepr"] = tuple(data["longrepr"])
        report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
        if report is None:
            return
        if chunk is not None:
            chunk.phases.setdefault(report.nodeid, set()).add(report.when)
        if report.when == "call" and report.passed:
            self.config.stash.setdefault(PASSED, set()).add(report.nodeid)
        self.config.hook.pytest_runtest_logreport(report=report)

    def _adopt(self, dicts: List[dict]) -> None:
        adopted = upstream.adopt_benchmarks(self.config, dicts)
        earlier = self.config.stash.setdefault(trials.EARLIER, {})
        for bench in adopted:
            earlier.setdefault(trials.base_name(bench), []).append(list(bench.stats.data))

    def _power(self, power: Optional[dict]) -> None:
        if power and self.power_facts is None:
            self.power_facts = power
            if power.get("source"):  # measured with a source: the next workers use this idle power
                self.config.stash.setdefault(POWER_IDLE, (power.get("idle_w"), power.get("idle_unavailable")))
            self.config.stash.setdefault(POWER, FactsOnly(power))

    def _fail(self, item: pytest.Item, why: str, chunk: Optional[Chunk] = None, output: str = "") -> None:
        """One failure for the item: of its call, or of its teardown when its call was already reported."""
        text = f"edge-bench: {item.nodeid} {why}" + (f"; its last output:\n{output}" if output else "")
        seen = chunk.phases.get(item.nodeid, set()) if chunk is not None else set()
        when = "teardown" if "call" in seen else "call"
        keywords = {name: 1 for name in item.keywords}
        report = pytest.TestReport(item.nodeid, item.location, keywords, "failed", text, when)
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
            f"--trial-seed={state.trial_seed}", "--isolate=none", f"{server_side.CHILD_OPTION}={spec_path}",
        ]  # fmt: skip
        # Its own basetemp inside the session's: as a session of its own it would wipe a --basetemp the session uses.
        args.append(f"--basetemp={os.path.join(str(upstream.basetemp(self.config)), 'fresh-processes')}")
        if self.config.pluginmanager.has_plugin("cacheprovider"):  # --lf and --sw: an empty cache, every item kept
            args += ["-o", f"cache_dir={os.path.join(self.tmp, 'cache')}", "--lfnf=all"]
        for dest, flag in (("xmlpath", "--junitxml"), ("report_log", "--report-log")):
            if getattr(self.config.option, dest, None):  # the session writes these from the replayed reports
                args.append(f"{flag}={os.path.join(self.tmp, dest)}")
        env = dict(os.environ, **{server_side.SERVER_ENV: "1"})
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    args,
                    cwd=str(self.config.invocation_params.dir),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd, cmd_read),
                    start_new_session=True,  # one SIGINT, the session's, never the terminal's and tox's twice
                )
        except OSError as exc:
            for fd in (read_fd, cmd_write):
                os.close(fd)
            raise pytest.UsageError(f"edge-bench: cannot start the fresh-process server: {exc}") from None
        finally:
            os.close(write_fd)
            os.close(cmd_read)
        return Server(proc, Stream(read_fd), os.fdopen(cmd_write, "w", encoding="utf-8"), log_path)

    def stop(self) -> None:
        """Stop the running worker, if any: one SIGINT, then what it finished is read and kept."""
        chunk = self.chunk
        if chunk is None or chunk.done:
            self.chunk = None
            return
        stops = self.config.stash.get(STOPS, None)
        if stops is not None:
            stops.shield()  # a second signal must not cut the read of what the worker hands over
        self.stopping = True
        if chunk.pid:
            _interrupt(chunk.pid)
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            self._read(chunk, min(deadline, time.monotonic() + STOP_QUIET_S))
            if not chunk.done and self.server is not None:  # a long wait is said, not silent
                from bench_support.plugin.terminal import live_writer

                what = chunk.pending[0] if chunk.pending else "its benchmark"
                live_writer(self.config)(
                    f"stopping: waiting up to {STOP_GRACE_S - STOP_QUIET_S:.0f} s more for the fresh process running "
                    f"{what} to hand over what it finished (then it is killed)"
                )
                self._read(chunk, deadline)
        except KeyboardInterrupt:  # no handlers to shield with (not the main thread): end it now
            pass
        if not chunk.done:  # it did not hand over in time
            self._kill_server()
        self.chunk = None

    def _kill_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.kill()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._kill_server()
            shutil.rmtree(self.tmp, ignore_errors=True)


def _warning(message: dict) -> warnings.WarningMessage:
    """A worker's warning as the record pytest's warnings summary reads: its category found again by name (a
    category that cannot be found or built again is a UserWarning with the same text)."""
    text = str(message.get("message", ""))
    module, _, qualname = str(message.get("category", "")).partition(":")
    category: type = UserWarning
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, Warning):
            category = found
        instance = category(text)
    except Exception:  # noqa: BLE001 - any failure to rebuild it keeps the text
        category, instance = UserWarning, UserWarning(text)
    return warnings.WarningMessage(
        instance, category, str(message.get("filename", "")), int(message.get("lineno") or 0)
    )


def _interrupt(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except OSError:
        pass


class FactsOnly:
    """The power facts a worker measured with, standing in for a PowerSession the session never opened."""

    def __init__(self, facts: Dict[str, Any]) -> None:
        self._facts = dict(facts)

    def facts(self) -> Dict[str, Any]:
        return dict(self._facts)
