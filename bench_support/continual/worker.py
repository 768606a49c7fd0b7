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
``mem_hwm_mb`` (VmHWM, the per-image peak) is recorded beside it as a check.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from typing import Any, Dict, List, Optional

from bench_support.errors import UserError

REPLY_TIMEOUT_S = 1800.0


class WorkerError(UserError):
    """The worker failed; the message is one line for the user."""


# --- inside the worker ------------------------------------------------------------------


def _serve(mode: str, config: Dict[str, Any], reply) -> None:
    if mode == "pretrain":
        from bench_support.continual.pretrain import pretrain

        reply(pretrain(config))
        return
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
            return
        else:
            reply({"error": f"unknown command {command!r}"})


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
    if not config.get("allow_network"):
        from bench_support import netguard

        netguard.install()
    try:
        _serve(argv[0], config, reply)
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
    """A running worker: ``request(cmd)`` sends one command and returns its reply."""

    def __init__(self, mode: str, config: Dict[str, Any], cwd: str, env: Optional[Dict[str, str]] = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="edge-bench-cl-")
        config_path = os.path.join(self._dir, "config.json")
        with open(config_path, "w") as fh:
            json.dump(config, fh)
        self._stderr = open(os.path.join(self._dir, "stderr.txt"), "w+")
        full_env = dict(os.environ if env is None else env)
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, full_env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            through_shell([sys.executable, "-m", "bench_support.continual.worker", mode, config_path]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=cwd,
            env=full_env,
            start_new_session=True,  # the shell and the worker form one group: killed together
        )

    def read(self, timeout_s: float = REPLY_TIMEOUT_S) -> Dict[str, Any]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            self.close()
            raise WorkerError(f"continual-learning worker gave no answer in {timeout_s:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"continual-learning worker ended (exit {self.proc.returncode}): {self.stderr_tail()}")
        message = json.loads(line)
        if "error" in message:
            raise WorkerError(message["error"])
        return message

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

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)


def run_once(mode: str, config: Dict[str, Any], cwd: str) -> Dict[str, Any]:
    """Start a worker for a single answer (pretraining) and wait for it."""
    worker = Worker(mode, config, cwd)
    try:
        return worker.read()
    finally:
        worker.close()


if __name__ == "__main__":
    sys.exit(main())
