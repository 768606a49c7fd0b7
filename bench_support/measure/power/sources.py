"""Where power comes from: jtop, INA3221 hwmon, tegrastats, RAPL, NVML.

Every source has ``kind`` ("counter": ``read()`` returns cumulative joules, wraps
already folded in; "instant": watts now; "average": watts averaged over the interval
before the reading), a ``label`` naming backend, rail or zone, and
``measured_total`` (True: a measured input rail; False: a sum of rails or zones).
Each takes its sysfs root, command or client object as a parameter, so tests can hand
it a fake. ``open_source`` tries them in the order of ``AUTO_ORDER`` and returns the
first that works, or the reason each one could not. ``read()`` never blocks; a source
that can no longer measure raises :class:`SourceUnavailable` from it. tegrastats and
jtop, fed by a process or client beside the benchmark, live in ``live`` (fresh
or fail); they are re-exported here.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from bench_support.measure.power.errors import SourceUnavailable
from bench_support.measure.power.live import (
    INPUT_RAILS,
    JtopSource,
    TegrastatsSource,
    parse_tegrastats,
    tegrastats_total,
)
from bench_support.measure.sysfs import counter_delta, read_text, system_path

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "INPUT_RAILS",
    "Ina3221Source",
    "JtopSource",
    "NvmlSource",
    "RaplSource",
    "SourceUnavailable",
    "TegrastatsSource",
    "open_source",
    "parse_tegrastats",
    "tegrastats_total",
]

BACKENDS = ("auto", "jtop", "ina3221", "tegrastats", "rapl", "nvml", "none")
AUTO_ORDER = ("jtop", "ina3221", "tegrastats", "rapl", "nvml")

# --- RAPL ---------------------------------------------------------------------------------


class RaplSource:
    """powercap energy counters (Intel, and AMD Zen through the same interface)."""

    kind = "counter"

    def __init__(self, root: Optional[str] = None) -> None:
        root = root or system_path("/sys/class/powercap")
        zones = sorted(glob.glob(os.path.join(root, "intel-rapl:*")))
        top = [z for z in zones if re.fullmatch(r"intel-rapl:\d+", os.path.basename(z))]
        if not top:
            raise SourceUnavailable(f"no RAPL zones under {root}")
        names = {z: read_text(os.path.join(z, "name")) or os.path.basename(z) for z in top}
        psys = [z for z in top if names[z] == "psys"]
        # psys covers the whole platform; without it, the packages are summed.
        self.zones = psys or [z for z in top if names[z].startswith("package")] or top
        self.measured_total = bool(psys)
        self.label = "rapl: " + "+".join(names[z] for z in self.zones) + ("" if psys else " (summed zones)")
        self._max = {z: float(read_text(os.path.join(z, "max_energy_range_uj")) or 0) for z in self.zones}
        self._last: Dict[str, float] = {}
        self._total_uj = 0.0
        self.read()  # fails here, at selection time, if energy_uj is root-only

    def read(self) -> float:
        for zone in self.zones:
            path = os.path.join(zone, "energy_uj")
            try:
                with open(path) as fh:
                    value = float(fh.read())
            except PermissionError:
                raise SourceUnavailable(
                    f"{path} is readable by root only (since the 2020 PLATYPUS fix, CVE-2020-8694)"
                ) from None
            if zone in self._last:
                self._total_uj += counter_delta(self._last[zone], value, self._max[zone])
            self._last[zone] = value
        return self._total_uj / 1e6


# --- INA3221 hwmon ------------------------------------------------------------------------


class Ina3221Source:
    """The Jetson power monitors read straight from hwmon sysfs (faster than jtop)."""

    kind = "instant"

    def __init__(self, root: Optional[str] = None) -> None:
        root = root or system_path("/sys/bus/i2c/drivers/ina3221")
        self.channels: List[Tuple[str, str, int]] = []  # (rail, hwmon dir, channel)
        for hwmon in sorted(glob.glob(os.path.join(root, "*", "hwmon", "hwmon*"))):
            for label_file in sorted(glob.glob(os.path.join(hwmon, "in*_label"))):
                channel = int(re.search(r"in(\d+)_label", label_file).group(1))
                rail = read_text(label_file)
                if rail and not rail.lower().startswith("sum of"):
                    self.channels.append((rail, hwmon, channel))
        if not self.channels:
            raise SourceUnavailable(f"no INA3221 channels under {root}")
        inputs = [c for c in self.channels if c[0] in INPUT_RAILS]
        self.measured_total = bool(inputs)
        self.used = inputs[:1] or self.channels
        rails = "+".join(c[0] for c in self.used)
        self.label = f"ina3221: {rails}" + ("" if inputs else " (sum of rails)")
        try:
            self.read()
        except (OSError, ValueError) as exc:
            raise SourceUnavailable(str(exc)) from None

    @staticmethod
    def _channel_w(hwmon: str, channel: int) -> float:
        power_uw = read_text(os.path.join(hwmon, f"power{channel}_input"))
        if power_uw is not None:
            return float(power_uw) / 1e6
        mv = read_text(os.path.join(hwmon, f"in{channel}_input"))
        ma = read_text(os.path.join(hwmon, f"curr{channel}_input"))
        if mv is None or ma is None:
            # After selection a miss is a read error: the sampler tolerates it until nothing is fresh.
            raise OSError(f"{hwmon} channel {channel} has no voltage/current readings")
        return float(mv) * float(ma) / 1e6

    def read(self) -> float:
        return sum(self._channel_w(hwmon, channel) for _, hwmon, channel in self.used)


# --- NVML ---------------------------------------------------------------------------------


class NvmlSource:
    """NVIDIA GPU: the energy counter (Volta and newer), else polled power."""

    def __init__(self, index: int = 0, nvml: Any = None) -> None:
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                raise SourceUnavailable("nvidia-ml-py (pynvml) is not installed") from None
        try:
            nvml.nvmlInit()
            self._nvml = nvml
            self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(self._handle)
        except Exception as exc:  # noqa: BLE001 - NVMLError of every kind
            raise SourceUnavailable(f"NVML not usable: {exc}") from None
        name = name.decode() if isinstance(name, bytes) else name
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.kind = "counter"
            self.label = f"nvml: {name} GPU {index} energy counter"
        except Exception:  # noqa: BLE001 - older than Volta
            self.kind = "average"  # on Ampere+ the power reading is itself a 1 s average
            self.label = f"nvml: {name} GPU {index} power readings"
        self.measured_total = False  # the GPU board only, not the whole machine

    def read(self) -> float:
        if self.kind == "counter":
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0  # mJ -> J
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0  # mW -> W

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


# --- selection ----------------------------------------------------------------------------


def _make(name: str, interval_s: float) -> Any:
    if name == "rapl":
        return RaplSource()
    if name == "ina3221":
        return Ina3221Source()
    if name == "tegrastats":
        return TegrastatsSource(interval_s)
    if name == "jtop":
        return JtopSource(interval_s)
    if name == "nvml":
        return NvmlSource()
    raise ValueError(f"unknown power backend {name!r}")


def open_source(backend: str, interval_s: float) -> Tuple[Any, Optional[str]]:
    """(source, None) or (None, reason) for ``--power-backend``."""
    if backend == "none":
        return None, "power measurement switched off (--power-backend none)"
    names = AUTO_ORDER if backend == "auto" else (backend,)
    reasons = []
    for name in names:
        try:
            return _make(name, interval_s), None
        except SourceUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    return None, "no power sensor readable here (" + "; ".join(reasons) + ")"
