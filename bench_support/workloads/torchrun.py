"""torchrun: launching it from the benchmark process, and its entry point behind the network guard.

:class:`Launch` starts PyTorch's launcher (``torch.distributed.run``, what the
``torchrun`` command runs) with one process per rank on this node, each running
:mod:`bench_support.workloads.distributed_rank`, and talks to local rank 0 over a Unix
socket. The suite starts no process group of its own: rendezvous, rank assignment and
the workers' lifetime are torchrun's.

It is started as ``python -m bench_support.workloads.torchrun [torchrun's arguments]``:
:func:`main` installs the network guard first, allowing the loopback and the rendezvous
host the user named (``EDGE_BENCH_ALLOWED_HOSTS``), then hands over to torchrun unchanged.
On one machine the rendezvous is torchrun's static one at a free loopback port and gloo
is pinned to ``lo``; across boards every node runs the same benchmark with
``--dist-nnodes``, ``--dist-node-rank``, ``--dist-master HOST:PORT`` (torchrun's
``--nnodes``, ``--node-rank``, ``--master-addr``, ``--master-port``) and optionally
``--dist-ifname`` (``docs/distributed.md``).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench_support import leftovers
from bench_support.errors import Unavailable, UserError

ALLOWED_HOSTS_ENV = "EDGE_BENCH_ALLOWED_HOSTS"
#: Starting the ranks (each imports torch and builds the model; across machines, every node joining the
#: rendezvous) may take this long.
READY_TIMEOUT_S = 300.0
#: Across machines a start that takes longer says what it waits for (on one machine, after WAIT_SAY_EVERY_S), then
#: again at this interval: silence reads as a hang.
WAIT_SAY_FIRST_S = 5.0
WAIT_SAY_EVERY_S = 30.0
LOOPBACK = "127.0.0.1"
REPLY_TIMEOUT_S = 1800.0
QUIT_WAIT_S = 10.0


#: The longest path a Unix socket may be bound to (``sun_path`` holds 108 bytes on Linux, 104 on macOS, the NUL
#: included), and what the launch's folder leaves for the sockets made in it: ours (``/control.sock``) and those
#: torch and multiprocessing make under a TMPDIR (``/torch-shm-dir-XXXXXX/manager.sock``: 34 bytes).
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107
SOCKET_HEADROOM = 40


class DistributedError(UserError):
    """The distributed launch failed; the message is one line for the user."""


@dataclass(frozen=True)
class Topology:
    """Where this node stands: one machine by default, or node ``node_rank`` of ``nnodes``."""

    nnodes: int = 1
    node_rank: int = 0
    master: Optional[Tuple[str, int]] = None  # rendezvous host and port (node 0's address)
    ifname: Optional[str] = None  # gloo's network interface

    @property
    def single(self) -> bool:
        return self.nnodes == 1

    @property
    def interface(self) -> Optional[str]:
        """The interface the ranks talk over, when known: ``lo`` on one machine."""
        return "lo" if self.single else self.ifname

    @property
    def allowed_hosts(self) -> List[str]:
        return [self.master[0]] if self.master else []


def procs_per_node(world_size: int, topology: Topology) -> int:
    """Ranks this node starts for ``world_size``; Unavailable when the world does not split evenly."""
    if world_size % topology.nnodes:
        raise Unavailable(f"world size {world_size} does not split over {topology.nnodes} nodes")
    return world_size // topology.nnodes


def threads_per_rank(nproc: int, cores: Optional[int] = None) -> int:
    """The node's usable cores shared by its ranks (torchrun's own default would be 1 thread each)."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
    return max(1, cores // nproc)


def torchrun_command(topology: Topology, nproc: int, config_path: str) -> List[str]:
    command = [sys.executable, "-m", "bench_support.workloads.torchrun", f"--nproc-per-node={nproc}"]
    # torchrun's static rendezvous; on one machine at a free loopback port the wrapper picks.
    host, port = topology.master or (LOOPBACK, 0)
    command += [
        f"--nnodes={topology.nnodes}",
        f"--node-rank={topology.node_rank}",
        f"--master-addr={host}",
        f"--master-port={port}",
    ]
    return command + ["--max-restarts=0", "-m", "bench_support.workloads.distributed_rank", config_path]


def resolvable(host: str, port: int) -> None:
    """DistributedError unless ``host`` resolves: torchrun would otherwise retry an unknown name until killed."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise DistributedError(f"--dist-master {host}:{port}: the host does not resolve ({reason})") from None


class Launch:
    """A running torchrun launch: ``request(cmd)`` runs one command on every rank, returns the answer.

    A context manager: leaving the block ends the launch (``quit``, then the process
    group is killed; at once on Ctrl-C). Only node 0 sends commands; another node's
    ``request`` waits for the answer of its local rank 0.
    """

    def __init__(
        self, config: Dict[str, Any], nproc: int, topology: Topology, cwd: str, say: Callable[[str], None] = print
    ) -> None:
        self.topology = topology
        self._say = say
        if topology.master is not None:
            resolvable(*topology.master)
        self.proc: Optional[subprocess.Popen] = None
        self._conn: Optional[socket.socket] = None
        self._buffer = b""
        self._dir = tempfile.mkdtemp(prefix=f"edge-bench-ddp-{leftovers.owner_tag()}-")
        try:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            control = os.path.join(self._dir, "control.sock")
            if len(os.fsencode(self._dir)) + SOCKET_HEADROOM > MAX_SOCKET_PATH:
                raise DistributedError(
                    f"the temporary folder's path is too long for the launch's control socket ({self._dir}: "
                    f"{len(os.fsencode(self._dir))} bytes, at most {MAX_SOCKET_PATH - SOCKET_HEADROOM}): "
                    "set TMPDIR to a shorter folder"
                )
            self._listener.bind(control)
            self._listener.listen(1)
            config = dict(config, control=control, allowed_hosts=topology.allowed_hosts)
            config_path = os.path.join(self._dir, "config.json")
            with open(config_path, "w") as fh:
                json.dump(config, fh)
            self._log = open(os.path.join(self._dir, "torchrun.log"), "w+")
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
            env[ALLOWED_HOSTS_ENV] = ",".join(topology.allowed_hosts)
            env["OMP_NUM_THREADS"] = str(config["threads_per_rank"])
            if topology.interface:
                env["GLOO_SOCKET_IFNAME"] = topology.interface
            env["TORCHELASTIC_ERROR_FILE"] = os.path.join(self._dir, "error.json")
            # torchrun makes a log folder of its own per launch (torchelastic_*) in the temporary folder and never
            # removes it: here it lands in ours, which close() removes, with the ranks' other temporary files.
            env["TMPDIR"] = self._dir
            self.proc = subprocess.Popen(
                torchrun_command(topology, nproc, config_path),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,  # the agent and its ranks: one group, killed together
            )
            self.ready = self._accept()["ready"]
        except BaseException:
            self.close(kill=True)
            raise

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None and not issubclass(exc_type, Exception))

    def _waiting_for(self) -> str:
        if self.topology.single:
            return "torchrun's ranks on this machine to start"
        host, port = self.topology.master or ("?", 0)
        return (
            f"the other nodes at the rendezvous {host}:{port} (this is node {self.topology.node_rank} of "
            f"{self.topology.nnodes})"
        )

    def _accept(self) -> Dict[str, Any]:
        """Local rank 0's first answer (``ready``): it connects first, then imports torch, joins the process group
        (every node's ranks) and builds the model. The whole wait is bounded and said while it lasts."""
        start = time.monotonic()
        # On one machine a slow board's own start (torch's import) takes seconds: said only when it lasts.
        first = WAIT_SAY_EVERY_S if self.topology.single else WAIT_SAY_FIRST_S
        deadline, say_at = start + READY_TIMEOUT_S, start + first
        while time.monotonic() < deadline:
            waiting_on = self._conn if self._conn is not None else self._listener
            ready, _, _ = select.select([waiting_on], [], [], 0.2)
            if ready and self._conn is None:
                self._conn, _ = self._listener.accept()
            elif ready:  # rank 0's answer has begun: the rest of its line comes at once
                return self.read(max(1.0, deadline - time.monotonic()))
            if self.proc is not None and self.proc.poll() is not None:
                raise DistributedError(f"torchrun ended before the ranks started: {self.log_tail()}")
            now = time.monotonic()
            if now >= say_at:
                self._say(
                    f"distributed: waiting for {self._waiting_for()}: {now - start:.0f} s so far, at most "
                    f"{READY_TIMEOUT_S:.0f} s"
                )
                say_at = now + WAIT_SAY_EVERY_S
        raise DistributedError(
            f"the ranks did not start within {READY_TIMEOUT_S:.0f} s (waiting for {self._waiting_for()}): "
            f"{self.log_tail()}"
        )

    def _line(self, timeout_s: float) -> Optional[bytes]:
        """The next line from local rank 0 (b"" at its end, None on time-out); bytes beyond it stay buffered.

        Own buffering: a file object's readline may take two answers off the socket at once, and
        ``select`` would then wait for the second while it already sits in the buffer.
        """
        assert self._conn is not None
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._conn], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = self._conn.recv(1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def read(self, timeout_s: float = REPLY_TIMEOUT_S) -> Dict[str, Any]:
        line = self._line(timeout_s)
        if line is None:
            raise DistributedError(f"the ranks gave no answer in {timeout_s:.0f} s")
        if not line:
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=QUIT_WAIT_S)
                except subprocess.TimeoutExpired:
                    pass
            raise DistributedError(f"the ranks ended: {self.log_tail()}")
        message = json.loads(line)
        if "error" in message:
            raise DistributedError(message["error"])
        return message

    def request(self, command: str) -> Dict[str, Any]:
        if self.topology.node_rank == 0:
            assert self._conn is not None
            try:
                self._conn.sendall((json.dumps({"cmd": command}) + "\n").encode())
            except OSError:
                raise DistributedError(f"the ranks ended: {self.log_tail()}") from None
        return self.read()

    def log_tail(self) -> str:
        """The most telling line torchrun or a rank printed: the last exception, else the last line."""
        try:
            self._log.flush()
            self._log.seek(0)
            lines = [ln.strip() for ln in self._log.read().splitlines() if ln.strip()]
        except (OSError, ValueError, AttributeError):
            return "no message"
        errors = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception", "Forbidden"))]
        return (errors or lines or ["no message"])[-1][:300]

    def _end_agent(self) -> None:
        """SIGTERM first: torchrun then ends its ranks, each in a session of its own (out of reach of a
        signal to the agent's group); SIGKILL to the agent's group if it is still there after ``QUIT_WAIT_S``.
        A rank whose agent is gone ends itself (``distributed_rank``'s parent watch)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=QUIT_WAIT_S)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()

    def close(self, kill: bool = False) -> None:
        """End the launch and remove its folder; safe to call twice."""
        try:
            if self.proc is not None and not kill and self.proc.poll() is None and self._conn is not None:
                try:
                    if self.topology.node_rank == 0:
                        self._conn.sendall(b'{"cmd": "quit"}\n')
                    self.proc.wait(timeout=QUIT_WAIT_S)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        finally:
            if self.proc is not None:
                self._end_agent()
            for closable in (self._conn, getattr(self, "_listener", None)):
                if closable is not None:
                    try:
                        closable.close()
                    except OSError:
                        pass
            log = getattr(self, "_log", None)
            if log is not None:
                log.close()
            shutil.rmtree(self._dir, ignore_errors=True)


# --- torchrun's entry point, guarded ------------------------------------------------------


def free_loopback_port_arg(arg: str) -> str:
    """``--master-port=0`` becomes a port free on the loopback now (the kernel's pick)."""
    if arg != "--master-port=0":
        return arg
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return f"--master-port={probe.getsockname()[1]}"


def main() -> None:
    from bench_support import netguard

    netguard.install([h for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h])
    from torch.distributed.run import main as torchrun

    torchrun([free_loopback_port_arg(a) for a in sys.argv[1:]])


if __name__ == "__main__":
    main()
