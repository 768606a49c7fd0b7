"""The continual-learning worker process and the benchmark's handle on it.

    python -m bench_support.continual.worker pretrain CONFIG.json
    python -m bench_support.continual.worker finetune CONFIG.json

One fresh process per fine-tune configuration, so its memory figures are its own. It
answers one JSON line per command on its original stdout (commands arrive on stdin:
``epoch``, ``after``, ``quit``); anything else it prints goes to stderr, so a stray
message cannot break the protocol.

Why it is started through ``/bin/sh``: Linux keeps the largest RSS a process ever had
in its signal struct, and ``exec`` copies the RSS peak of the process image it replaces
into it. A worker exec'ed straight from a large pytest process reports that process's
peak as its ``ru_maxrss`` before doing anything. A shell that forks the worker gives it
a fresh signal struct and a small pre-exec image, so ``ru_maxrss`` is the worker's own;
VmHWM, the per-image peak, is read beside it before the first step as a check.

It never outlives the benchmark process (its owner, named in ``EDGE_BENCH_OWNER`` by
:func:`bench_support.leftovers.owner_tag`). The shell and the worker are a process group
of their own (so a Ctrl-C at the terminal reaches the benchmark process alone, which
then kills the group at once); and a thread of the worker waits for its stdin, a pipe
from the owner, to hang up, and checks every second that the owner still runs. When the
owner is gone (SIGKILL, the OOM killer), the worker removes the owner's folders it knows
(its config folder, the checkpoint targets: only those named after the owner) and kills
its process group, data-loader workers included.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

from bench_support import leftovers
from bench_support.errors import UserError

REPLY_TIMEOUT_S = 1800.0
#: How often a long step (pretraining) reports its progress.
PROGRESS_EVERY_S = 0.5
#: How long ``quit`` may take before the worker's group is killed (it has answered everything by then).
QUIT_WAIT_S = 5.0
OWNER_ENV = "EDGE_BENCH_OWNER"
#: After stdin hangs up, how long the owner may take to be gone before its folders are left to the reaper.
HANGUP_GRACE_S = 5.0


class WorkerError(UserError):
    """The worker failed; the message is one line for the user."""


# --- inside the worker ------------------------------------------------------------------


def _every(seconds: float, send: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """``send`` at most every ``seconds``, and always the last step: progress must not flood the pipe."""
    last = [float("-inf")]

    def maybe(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= seconds:
            last[0] = now
            send(done, total)

    return maybe


def _serve(mode: str, config: Dict[str, Any], reply) -> bool:
    """Answer the commands; False when stdin ended without ``quit``."""
    if mode == "pretrain":
        from bench_support.continual.pretrain import pretrain

        reply(pretrain(config, _every(PROGRESS_EVERY_S, lambda done, total: reply({"progress": [done, total]}))))
        return True
    from bench_support.continual.finetune import FineTune

    session = FineTune(config)
    reply({"ready": session.ready})
    for line in sys.stdin:
        command = json.loads(line).get("cmd")
        if command == "epoch":
            reply(session.train_epoch())
        elif command == "after":
            reply(session.after_epoch())
        elif command == "quit":
            return True
        else:
            reply({"error": f"unknown command {command!r}"})
    return False


def _end_orphaned(owner: str, folders: List[str]) -> None:
    """Stdin hung up: once the owner is gone, remove its folders (only those named after it); end the group."""
    deadline = time.monotonic() + HANGUP_GRACE_S  # a dying owner closes its pipes before it is a zombie
    while leftovers.tag_alive(owner) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not leftovers.tag_alive(owner):  # orphaned: nobody else would remove the owner's folders now
        for folder in folders:
            if leftovers.named_after(folder, owner):
                shutil.rmtree(folder, ignore_errors=True)
    if os.getpgid(0) == os.getsid(0) != os.getpid():  # the group the owner started (through_shell)
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def _watch_owner(owner: str, folders: List[str]) -> None:
    """(A daemon thread) until stdin hangs up or the owner ends, every second; then :func:`_end_orphaned`."""
    poller = select.poll()
    poller.register(0, 0)  # no events asked: poll reports the hang-up (and errors) only
    while not poller.poll(1000) and leftovers.tag_alive(owner):
        pass
    _end_orphaned(owner, folders)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] not in ("pretrain", "finetune"):
        print("usage: python -m bench_support.continual.worker {pretrain|finetune} CONFIG.json", file=sys.stderr)
        return 2
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # everything else, C libraries included, goes to stderr

    def reply(message: Dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    with open(argv[1]) as fh:
        config = json.load(fh)
    owner = os.environ.get(OWNER_ENV)
    folders = [os.path.dirname(os.path.abspath(argv[1])), *config.get("ckpt_dirs", {}).values()]
    if owner:
        threading.Thread(target=_watch_owner, args=(owner, folders), daemon=True).start()
    if not config.get("allow_network"):
        from bench_support import netguard

        netguard.install()
    try:
        if not _serve(argv[0], config, reply) and owner:
            _end_orphaned(owner, folders)  # commands ended without "quit": the owner went away
    except UserError as exc:  # ScenarioError, DataError, CheckpointError: one line, no traceback
        reply({"error": str(exc)})
        return 2
    except Exception as exc:  # noqa: BLE001 - reported to the parent, with the traceback on stderr
        traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        reply({"error": f"{type(exc).__name__}: {first}"})
        return 3
    return 0


# --- in the benchmark process -----------------------------------------------------------


def through_shell(command: List[str]) -> List[str]:
    """``command`` forked by a shell, so its ``ru_maxrss`` starts from its own (see above).

    ``; exit $?`` keeps the shell from exec'ing the command in its own place.
    """
    return ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]


class Worker:
    """A running worker: ``request(cmd)`` sends one command and returns its reply.

    Use it as a context manager: leaving the block on an exception that is not an
    :class:`Exception` (Ctrl-C's KeyboardInterrupt, SystemExit) kills the worker at once,
    otherwise :meth:`close` asks it to quit and waits ``QUIT_WAIT_S`` at most.
    """

    def __init__(self, mode: str, config: Dict[str, Any], cwd: str, env: Optional[Dict[str, str]] = None) -> None:
        owner = leftovers.owner_tag()
        # The config names the user's photos: private to the user (mkdtemp's folder is 0700).
        self._dir = tempfile.mkdtemp(prefix=f"edge-bench-cl-{owner}-")
        try:
            config_path = os.path.join(self._dir, "config.json")
            with os.fdopen(os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                json.dump(config, fh)
            stderr_fd = os.open(os.path.join(self._dir, "stderr.txt"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            self._stderr = os.fdopen(stderr_fd, "w+")
            full_env = dict(os.environ if env is None else env)
            full_env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, full_env.get("PYTHONPATH")) if p)
            full_env[OWNER_ENV] = owner
            self.proc = subprocess.Popen(
                through_shell([sys.executable, "-m", "bench_support.continual.worker", mode, config_path]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=cwd,
                env=full_env,
                start_new_session=True,  # the shell and the worker form one group: killed together
            )
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None and not issubclass(exc_type, Exception))

    def read(
        self, timeout_s: float = REPLY_TIMEOUT_S, on_progress: Optional[Callable[[int, int], None]] = None
    ) -> Dict[str, Any]:
        """The next answer; ``{"progress": [done, total]}`` lines before it go to ``on_progress``."""
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
            if not ready:
                self.close(kill=True)
                raise WorkerError(f"continual-learning worker gave no answer in {timeout_s:.0f} s")
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                tail = self.stderr_tail()
                raise WorkerError(f"continual-learning worker ended (exit {self.proc.returncode}): {tail}")
            message = json.loads(line)
            if "error" in message:
                raise WorkerError(message["error"])
            if "progress" not in message:
                return message
            if on_progress is not None:
                on_progress(*message["progress"])

    def request(self, command: str) -> Dict[str, Any]:
        try:
            self.proc.stdin.write((json.dumps({"cmd": command}) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.proc.wait()
            raise WorkerError(
                f"continual-learning worker ended (exit {self.proc.returncode}): {self.stderr_tail()}"
            ) from None
        return self.read()

    def stderr_tail(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
        return lines[-1] if lines else "no message"

    def close(self, kill: bool = False) -> None:
        """End the worker (``kill``: at once) and remove its folder. Safe to call twice."""
        try:
            if not kill and self.proc.poll() is None:
                try:
                    self.proc.stdin.write(b'{"cmd": "quit"}\n')
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=QUIT_WAIT_S)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        finally:  # also when a Ctrl-C interrupts the wait above: the group goes at once
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass  # already gone (a group of zombies can refuse the signal on some systems)
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            shutil.rmtree(self._dir, ignore_errors=True)


def run_once(
    mode: str, config: Dict[str, Any], cwd: str, on_progress: Optional[Callable[[int, int], None]] = None
) -> Dict[str, Any]:
    """Start a worker for a single answer (pretraining) and wait for it, its progress to ``on_progress``.

    Pretraining is preparation, never timed as a result: its OpenMP threads sleep when idle
    (``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets a policy), so a busy neighbour cannot turn
    torch's spinning threads into a 10-100x slowdown of the first run (docs/methods.md, Noise).
    """
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with Worker(mode, config, cwd, env) as worker:
        return worker.read(on_progress=on_progress)


if __name__ == "__main__":
    sys.exit(main())
