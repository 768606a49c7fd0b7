"""Power modes as a parameter on a Jetson: switch nvpmodel modes through jtop, wait until the clocks settle.

``--jetson-power-modes 0,2`` (ids or names) runs the training and DataLoader grids once
per mode. :class:`PowerModeSweep` holds one jtop client for the session: before a
benchmark of another mode it asks jtop's service for the mode, then *measures* the
settling: nvpmodel's status file names the new mode and every CPU cluster's and devfreq
device's current clock is within its new cap, on ``SETTLE_READS`` reads in a row. The
time that took is recorded with the mode and the clocks. At the end of the session,
also after a failure or Ctrl-C, the mode the board started in is restored.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from bench_support.board.setup import SetupError, jtop_factory
from bench_support.errors import UserError
from bench_support.measure.jetson import devfreq_clocks_mhz, nvpmodel_mode
from bench_support.measure.sysfs import read_text, rooted

SETTLE_READS = 3  # consecutive reads within the caps
SETTLE_POLL_S = 0.1
SETTLE_TIMEOUT_S = 20.0

Mode = Union[int, str]


def power_modes_option(text: str) -> List[Mode]:
    """``"0,2"`` -> [0, 2]; ``"MAXN,15W"`` -> names; refuses an empty item or a mode given twice."""
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise UserError(f"--jetson-power-modes {text!r}: expected ids or names separated by commas, e.g. 0,2")
    if len(set(items)) < len(items):
        raise UserError(f"--jetson-power-modes {text!r}: a mode is given twice")
    return [int(item) if item.isdigit() else item for item in items]


def _pairs(folder: str, current: str, cap: str) -> Dict[str, Tuple[int, int]]:
    """(current, cap) of every entry of ``folder`` that has both files as numbers."""
    pairs: Dict[str, Tuple[int, int]] = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        values = [read_text(os.path.join(folder, name, file)) for file in (current, cap)]
        if all(v and v.isdigit() for v in values):
            pairs[name] = (int(values[0]), int(values[1]))
    return pairs


def _clock_pairs(root: str) -> Dict[str, Tuple[int, int]]:
    """(current, cap) of every CPU cluster (kHz) and devfreq device (Hz), by name."""
    cpus = _pairs(rooted(root, "/sys/devices/system/cpu/cpufreq"), "scaling_cur_freq", "scaling_max_freq")
    return {**cpus, **_pairs(rooted(root, "/sys/class/devfreq"), "cur_freq", "max_freq")}


def wait_until_settled(
    root: str,
    mode_id: int,
    timeout_s: float = SETTLE_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Seconds until nvpmodel reports ``mode_id`` and every clock is within its cap ``SETTLE_READS`` times in a row."""
    start = clock()
    in_a_row = 0
    while True:
        mode = nvpmodel_mode(root)
        pairs = _clock_pairs(root)
        ok = mode is not None and mode[0] == mode_id and all(cur <= cap for cur, cap in pairs.values())
        in_a_row = in_a_row + 1 if ok else 0
        if in_a_row >= SETTLE_READS:
            return clock() - start
        if clock() - start > timeout_s:
            raise SetupError(f"power mode {mode_id}: the clocks did not settle within {timeout_s:.0f} s")
        sleep(SETTLE_POLL_S)


class PowerModeSweep:
    """One jtop client for the session: ``enter(mode)`` before a benchmark, ``close()`` restores the first mode."""

    def __init__(self, modes: Sequence[Mode], factory: Optional[Callable[[], Any]] = None, root: str = "/") -> None:
        factory = jtop_factory(factory, "--jetson-power-modes needs")
        self.root = root
        try:
            self.client = factory()
            self.client.start()
            available = list(self.client.nvpmodel.models)
            self.original: Tuple[int, str] = (self.client.nvpmodel.id, self.client.nvpmodel.name)
        except Exception as exc:  # noqa: BLE001 - JtopException, permissions, no nvpmodel
            raise SetupError(f"cannot read the power modes through jtop: {exc}".splitlines()[0]) from None
        self.modes: List[Tuple[int, str]] = []
        for mode in modes:
            if isinstance(mode, int) and 0 <= mode < len(available):
                self.modes.append((mode, available[mode]))
            elif isinstance(mode, str) and mode in available:
                self.modes.append((available.index(mode), mode))
            else:
                self.client.close()
                raise SetupError(
                    f"--jetson-power-modes: no mode {mode!r} on this board (modes: "
                    + ", ".join(f"{i} {n}" for i, n in enumerate(available))
                    + ")"
                )
        self.current: Optional[int] = None

    @property
    def names(self) -> List[str]:
        return [name for _, name in self.modes]

    def enter(self, name: str) -> Dict[str, Any]:
        """Be in mode ``name`` with settled clocks; the facts a result records."""
        mode_id = dict((n, i) for i, n in self.modes)[name]
        if self.current != mode_id:
            self._request(mode_id)
            self.current = mode_id
        settle_s = wait_until_settled(self.root, mode_id)
        facts: Dict[str, Any] = {
            "power_mode": name,
            "power_mode_id": mode_id,
            "power_mode_settle_s": round(settle_s, 3),
            "clocks_mhz": {
                key: round(cur / (1000 if key.startswith("policy") else 1_000_000))
                for key, (cur, _) in _clock_pairs(self.root).items()
            },
        }
        devfreq = devfreq_clocks_mhz(self.root)
        if devfreq:
            facts["devfreq_mhz"] = devfreq
        return facts

    def _request(self, mode_id: int, client: Any = None) -> None:
        """Ask jtop's service for ``mode_id``, forced: jetson-stats compares a request with the mode the client last
        saw, which lags the board by its update interval, and would drop a switch back to that mode."""
        client = client or self.client
        setter = getattr(client.nvpmodel, "set_nvpmodel_id", None)
        if setter is not None:
            setter(mode_id, force=True)
        else:
            client.nvpmodel = mode_id

    def close(self) -> None:
        """Restore the mode the board started in (when a switch happened); safe to call twice."""
        client, self.client = getattr(self, "client", None), None
        if client is None:
            return
        try:
            if self.current is not None and self.current != self.original[0]:
                self._request(self.original[0], client)
                wait_until_settled(self.root, self.original[0])
        finally:
            client.close()
