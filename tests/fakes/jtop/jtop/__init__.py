"""Stand-in for jetson-stats' client on a simulated Jetson: ``from jtop import jtop, JtopException``.

Put ``tests/fakes/jtop`` on ``PYTHONPATH`` (or ``sys.path``) and point ``BENCH_SYSTEM_ROOT``
at a root built by ``fakes.jetson_board.build_root``. Standard library only, one module
(no submodules), so a test can load it under the name ``jtop`` and drop it again cleanly.

The shapes follow jetson-stats 4.3.1 (unchanged in 7.2.0 for everything here), read in
its source: ``jtop/jtop.py`` (class ``jtop``: ``start``, ``ok``, ``close``, ``attach``,
``interval``, ``board``, ``power``, the ``nvpmodel``/``jetson_clocks`` setters),
``jtop/core/power.py`` (``PowerService.get_status``, ``total_power``,
``list_all_i2c_ports``), ``jtop/core/nvpmodel.py`` (``NVPModel``),
``jtop/core/jetson_clocks.py`` (``JetsonClocks``), ``jtop/core/exceptions.py``
(``JtopException``), ``jtop/core/jetson_variables.py`` (``get_jetson_variables``,
``get_nvidia_l4t``), ``jtop/core/temperature.py``. Like the real client, a change of
power mode or jetson_clocks is a request to the service: the files change at once, the
client's own view of them at its next update.

Knobs (environment, read by ``start()``):
    FAKE_JTOP=dead            start() raises JtopException: jtop.service not active
    FAKE_JTOP=denied          start() raises JtopException: no permission on the socket
    FAKE_JTOP=hang            start() blocks until ``release_hung_clients()`` (a service that never answers)
    FAKE_JTOP=stop_after:N    after N updates the client stops: ok() returns False
    FAKE_JTOP=lost_after:N    after N updates the service dies: ok() raises "Lost connection with jtop server"
    FAKE_JTOP=stall_after:N   after N updates no more data, yet ok(spin=True) stays True
    FAKE_JTOP_SERVICE_INTERVAL=S  the service already runs at S seconds (``interval`` differs from the asked one)
"""

from __future__ import annotations

import glob
import os
import platform
import re
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

__version__ = "4.3.1"

ROOT_ENV = "BENCH_SYSTEM_ROOT"
KNOB_ENV = "FAKE_JTOP"
SERVICE_INTERVAL_ENV = "FAKE_JTOP_SERVICE_INTERVAL"
TIMEOUT_GAIN = 3  # jetson-stats: ok() waits this many intervals for an update

# jetson-stats 4.3.1 start(); 7.x ends with "sudo jtop --install-service" instead.
NOT_ACTIVE = "The jtop.service is not active. Please run:\nsudo systemctl restart jtop.service"
NO_ACCESS = "I can't access jtop.service.\nPlease logout or reboot this board."
LOST = "Lost connection with jtop server"

# --- where the simulated board keeps its state (relative to the root) -----------------------

NVPMODEL_CONF = "etc/nvpmodel.conf"
NVPMODEL_STATUS = "var/lib/nvpmodel/status"  # nvpmodel's own record of the mode, "pmode:0002 fmode:quiet"
STATE_DIR = "var/lib/fake-jetson"
JETSON_CLOCKS_STATE = STATE_DIR + "/jetson_clocks"  # "1" while jetson_clocks pins the clocks
# jtop stores `jetson_clocks --store` output here (real: <sys.prefix>/local/jtop/l4t_dfs.conf);
# without it jtop cannot switch jetson_clocks off again ("uncontrolled").
L4T_DFS_CONF = STATE_DIR + "/l4t_dfs.conf"
EEPROM_PART_NUMBER = STATE_DIR + "/eeprom_part_number"  # stands in for the module EEPROM jtop reads over I2C
CPU_DIR = "sys/devices/system/cpu"
GPU_DEVFREQ = "sys/class/devfreq/17000000.gpu"
EMC_CAP = "sys/kernel/nvpmodel_emc_cap/emc_iso_cap"
I2C_DEVICES = "sys/bus/i2c/devices"
CPU_CLUSTER_SIZE = 4  # Orin: CPU_A78_0 = cpu0-3, CPU_A78_1 = cpu4-7 (one cpufreq policy each)

# Subsets of jetson-stats' tables (jetson_variables.py), enough for the boards a test builds.
MODULE_NAME_TABLE = {
    "p3767-0005": "NVIDIA Jetson Orin Nano (Developer kit)",
    "p3767-0004": "NVIDIA Jetson Orin Nano (4GB ram)",
    "p3767-0003": "NVIDIA Jetson Orin Nano (8GB ram)",
    "p3767-0001": "NVIDIA Jetson Orin NX (8GB ram)",
    "p3767-0000": "NVIDIA Jetson Orin NX (16GB ram)",
    "p3701-0005": "NVIDIA Jetson AGX Orin (64GB ram)",
    "p3701-0004": "NVIDIA Jetson AGX Orin (32GB ram)",
    "p3668-0001": "NVIDIA Jetson Xavier NX",
    "p3448-0000": "NVIDIA Jetson Nano (4 GB ram)",
}
CUDA_TABLE = {"tegra234": "8.7", "tegra23x": "8.7", "tegra194": "7.2", "tegra186": "6.2", "tegra210": "5.3"}
NVIDIA_JETPACK = {
    "36.4.3": "6.2",
    "36.4.2": "6.1 (rev1)",
    "36.4.0": "6.1",
    "36.3.0": "6.0",
    "35.6.0": "5.1.4",
    "35.5.0": "5.1.3",
    "35.4.1": "5.1.2",
    "32.7.4": "4.6.4",
}
# What JetPack 6.1 ships (jtop reads these from the libraries themselves, not from /sys).
LIBRARIES = {
    "CUDA": "12.6.68",
    "OpenCV": "4.8.0",
    "OpenCV-Cuda": False,
    "cuDNN": "9.3.0.75",
    "TensorRT": "10.3.0.30",
    "VPI": "3.2.4",
    "Vulkan": "1.3.204",
}


# --- file helpers -------------------------------------------------------------------------------


def read(path: str) -> Optional[str]:
    """A sysfs-like file's text without NULs and surrounding space; None if unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read().replace(b"\0", b"").decode("utf-8", "replace").strip()
    except OSError:
        return None


def read_int(path: str) -> Optional[int]:
    text = read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def write_atomic(path: str, text: str) -> None:
    """Whole-file replace: a reader sees the old or the new number, never half of one."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


# --- nvpmodel -------------------------------------------------------------------------------------

_POWER_MODEL_RE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\w+)\s*>")
_PM_DEFAULT_RE = re.compile(r"<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>")
_PMODE_RE = re.compile(r"pmode:(\d+)")


def parse_nvpmodel_conf(text: str) -> Tuple[Dict[int, Tuple[str, List[Tuple[str, str, str]]]], Optional[int]]:
    """({id: (name, [(param, arg, value), ...])}, default id) from nvpmodel.conf's text."""
    modes: Dict[int, Tuple[str, List[Tuple[str, str, str]]]] = {}
    default = None
    current: Optional[List[Tuple[str, str, str]]] = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _POWER_MODEL_RE.match(line)
        if match:
            current = []
            modes[int(match.group(1))] = (match.group(2), current)
            continue
        match = _PM_DEFAULT_RE.match(line)
        if match:
            default = int(match.group(1))
        if line.startswith("<"):  # a PARAM or PM_CONFIG block ends a mode's settings
            current = None
            continue
        fields = line.split()
        if current is not None and len(fields) == 3:
            current.append((fields[0], fields[1], fields[2]))
    return modes, default


def power_modes(root: str) -> Tuple[Dict[int, Tuple[str, List[Tuple[str, str, str]]]], Optional[int]]:
    return parse_nvpmodel_conf(read(os.path.join(root, NVPMODEL_CONF)) or "")


def current_mode(root: str) -> Tuple[int, str]:
    """(id, name) of the mode nvpmodel last applied, as ``nvpmodel -q`` would answer."""
    status = read(os.path.join(root, NVPMODEL_STATUS)) or ""
    match = _PMODE_RE.search(status)
    modes, default = power_modes(root)
    mode_id = int(match.group(1)) if match else (default if default is not None else 0)
    name = modes[mode_id][0] if mode_id in modes else f"MODE_{mode_id}"
    return mode_id, name


def _cpus(root: str) -> List[int]:
    found = [re.search(r"cpu(\d+)$", p) for p in glob.glob(os.path.join(root, CPU_DIR, "cpu[0-9]*"))]
    return sorted(int(m.group(1)) for m in found if m)


def cpu_online(root: str, cpu: int) -> bool:
    return read(os.path.join(root, CPU_DIR, f"cpu{cpu}", "online")) != "0"


def _cpu_ranges(cpus: List[int]) -> str:
    """Ranges such as 0-3 or 0-7, as /sys/devices/system/cpu/online lists the online CPUs."""
    spans: List[List[int]] = []
    for cpu in cpus:
        if spans and cpu == spans[-1][1] + 1:
            spans[-1][1] = cpu
        else:
            spans.append([cpu, cpu])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def _cpufreq(root: str, cpu: int, name: str) -> str:
    return os.path.join(root, CPU_DIR, f"cpu{cpu}", "cpufreq", name)


def apply_power_mode(root: str, mode_id: int) -> None:
    """What ``nvpmodel -m <id>`` does to the simulated board: the conf's settings, then its status file."""
    modes, _ = power_modes(root)
    if mode_id not in modes:
        raise ValueError(f"no POWER_MODEL ID={mode_id} in {NVPMODEL_CONF}")
    cpus = _cpus(root)
    for param, arg, value in modes[mode_id][1]:
        number = int(value) if re.fullmatch(r"-?\d+", value) else None
        if param == "CPU_ONLINE" and arg.startswith("CORE_"):
            write_atomic(os.path.join(root, CPU_DIR, f"cpu{int(arg[5:])}", "online"), f"{value}\n")
        elif param.startswith("CPU_A78_") and arg in ("MIN_FREQ", "MAX_FREQ") and number is not None:
            cluster = int(param.rsplit("_", 1)[1])
            for cpu in cpus:
                if cpu // CPU_CLUSTER_SIZE == cluster:
                    top = read_int(_cpufreq(root, cpu, "cpuinfo_max_freq")) or 0
                    khz = top if number < 0 else min(number, top)
                    write_atomic(_cpufreq(root, cpu, "scaling_" + arg.lower()), f"{khz}\n")
                    if arg == "MAX_FREQ" and (read_int(_cpufreq(root, cpu, "scaling_cur_freq")) or 0) > khz:
                        write_atomic(_cpufreq(root, cpu, "scaling_cur_freq"), f"{khz}\n")
        elif param == "GPU" and arg in ("MIN_FREQ", "MAX_FREQ") and number is not None:
            steps = [int(f) for f in (read(os.path.join(root, GPU_DEVFREQ, "available_frequencies")) or "0").split()]
            hz = max(steps) if number < 0 else max([f for f in steps if f <= number] or [min(steps)])
            write_atomic(os.path.join(root, GPU_DEVFREQ, arg.lower()), f"{hz}\n")
        elif param == "EMC" and arg == "MAX_FREQ" and number is not None:
            os.makedirs(os.path.dirname(os.path.join(root, EMC_CAP)), exist_ok=True)
            write_atomic(os.path.join(root, EMC_CAP), f"{max(number, 0)}\n")  # 0: no cap
    online = [cpu for cpu in cpus if cpu_online(root, cpu)]
    write_atomic(os.path.join(root, CPU_DIR, "online"), _cpu_ranges(online) + "\n")
    write_atomic(os.path.join(root, NVPMODEL_STATUS), f"pmode:{mode_id:04d} fmode:quiet\n")
    if jetson_clocks_on(root):  # jtop's service switches jetson_clocks off and on around a mode change
        _pin_clocks(root)


# --- jetson_clocks --------------------------------------------------------------------------------


def jetson_clocks_on(root: str) -> bool:
    return read(os.path.join(root, JETSON_CLOCKS_STATE)) == "1"


def _clock_files(root: str) -> List[str]:
    files = [_cpufreq(root, cpu, "scaling_min_freq") for cpu in _cpus(root)]
    return files + [os.path.join(root, GPU_DEVFREQ, "min_freq")]


def store_clocks_config(root: str) -> bool:
    """``jetson_clocks --store``: the minimum clocks to restore later; refused while the clocks are pinned."""
    path = os.path.join(root, L4T_DFS_CONF)
    if os.path.isfile(path) or jetson_clocks_on(root):
        return False
    lines = []
    for file in _clock_files(root):
        value = read(file)
        if value is not None:
            lines.append(f"/{os.path.relpath(file, root)} {value}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, "\n".join(lines) + "\n")
    return True


def _pin_clocks(root: str) -> None:
    for cpu in _cpus(root):
        top = read(_cpufreq(root, cpu, "scaling_max_freq"))
        if top and cpu_online(root, cpu):
            write_atomic(_cpufreq(root, cpu, "scaling_min_freq"), top + "\n")
            write_atomic(_cpufreq(root, cpu, "scaling_cur_freq"), top + "\n")
    gpu_max = read(os.path.join(root, GPU_DEVFREQ, "max_freq"))
    if gpu_max:
        for name in ("min_freq", "cur_freq"):
            write_atomic(os.path.join(root, GPU_DEVFREQ, name), gpu_max + "\n")


def set_jetson_clocks(root: str, enable: bool) -> None:
    """``jetson_clocks`` (pin every clock at its maximum) or ``jetson_clocks --restore l4t_dfs.conf``."""
    if enable:
        store_clocks_config(root)
        _pin_clocks(root)
    else:
        for line in (read(os.path.join(root, L4T_DFS_CONF)) or "").splitlines():
            path, _, value = line.partition(" ")
            target = os.path.join(root, path.lstrip("/"))
            if value and os.path.exists(target):
                write_atomic(target, value + "\n")
    os.makedirs(os.path.dirname(os.path.join(root, JETSON_CLOCKS_STATE)), exist_ok=True)
    write_atomic(os.path.join(root, JETSON_CLOCKS_STATE), "1\n" if enable else "0\n")


# --- what the service reads -----------------------------------------------------------------------


def ina3221_rails(root: str) -> Dict[str, Dict[str, Any]]:
    """{label: {'volt', 'curr', 'warn', 'crit', 'power', 'online'}} as jetson-stats' PowerService reads them.

    Same discovery: ``/sys/bus/i2c/devices/*/name`` containing "ina3221", its ``hwmon``
    folder's first entry, every ``in<N>_label`` except "NC" rails and channel 7 ("sum of
    shunt voltages"). Values as the files give them: mV, mA; power = volt * curr / 1000 mW.
    """
    rails: Dict[str, Dict[str, Any]] = {}
    for device in sorted(glob.glob(os.path.join(root, I2C_DEVICES, "*"))):
        if "ina3221" not in (read(os.path.join(device, "name")) or ""):
            continue
        hwmon_root = os.path.join(device, "hwmon")
        if not os.path.isdir(hwmon_root) or not os.listdir(hwmon_root):
            continue
        hwmon = os.path.join(hwmon_root, sorted(os.listdir(hwmon_root))[0])
        for label_file in sorted(glob.glob(os.path.join(hwmon, "in*_label"))):
            port = int(re.search(r"in(\d+)_label$", label_file).group(1))
            name = read(label_file) or ""
            if "NC" in name or port == 7:
                continue
            values: Dict[str, Any] = {}
            for key, file in (("volt", "in{}_input"), ("curr", "curr{}_input"), ("warn", "curr{}_max")):
                value = read_int(os.path.join(hwmon, file.format(port)))
                if value is not None:
                    values[key] = value
            crit = read_int(os.path.join(hwmon, f"curr{port}_crit"))
            if crit is not None:
                values["crit"] = crit
            if "volt" not in values or "curr" not in values:
                continue
            values["power"] = int(values["volt"] * (float(values["curr"]) / 1000))
            values["online"] = True
            rails[name] = values
    return dict(sorted(rails.items()))


def temperatures(root: str) -> Dict[str, Dict[str, Any]]:
    """{'cpu': {'temp': 47.5, 'online': True}, ...}: thermal zones named as jtop names them (type before '-')."""
    found: Dict[str, Dict[str, Any]] = {}
    for zone in sorted(glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*"))):
        kind = read(os.path.join(zone, "type"))
        if not kind:
            continue
        name = kind.split("-")[0] if "-" in kind else kind.split("_")[0]
        value = read_int(os.path.join(zone, "temp"))
        temp = value / 1000.0 if value is not None else -256.0
        found[name] = {"temp": temp, "online": temp != -256.0}
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def board_hardware(root: str) -> Dict[str, str]:
    """jetson-stats' ``board['hardware']``, key for key, from the simulated board's files."""
    hardware: Dict[str, str] = {"Model": read(os.path.join(root, "sys/firmware/devicetree/base/model")) or ""}
    part = read(os.path.join(root, EEPROM_PART_NUMBER)) or ""
    p_number = f"p{part[5:9]}-{part[10:14]}" if part else ""
    if part:
        hardware["699-level Part Number"] = part
        hardware["P-Number"] = p_number
    hardware["Module"] = MODULE_NAME_TABLE.get(p_number, "")
    compatible = (read(os.path.join(root, "proc/device-tree/compatible")) or "").split(",")[-1]
    hardware["SoC"] = compatible
    hardware["CUDA Arch BIN"] = next((arch for soc, arch in CUDA_TABLE.items() if soc in compatible), "")
    hardware["Serial Number"] = read(os.path.join(root, "sys/firmware/devicetree/base/serial-number")) or ""
    release = (read(os.path.join(root, "etc/nv_tegra_release")) or "").split(", ")
    l4t = ""
    if len(release) > 1:  # jetson-stats' own string surgery (get_nvidia_l4t)
        l4t = release[0].lstrip("# R").rstrip(" (release)") + "." + release[1].lstrip("REVISION: ")  # noqa: B005
    hardware["L4T"] = l4t
    hardware["Jetpack"] = NVIDIA_JETPACK.get(l4t, "")
    return hardware


def _platform() -> Dict[str, str]:
    # Machine/Distribution/Release are the simulated board's; Python is the client's own, as in jetson-stats.
    return {
        "Machine": "aarch64",
        "System": "Linux",
        "Distribution": "Ubuntu 22.04 Jammy Jellyfish",
        "Release": "5.15.148-tegra",
        "Python": platform.python_version(),
    }


# --- the client -----------------------------------------------------------------------------------


class JtopException(Exception):
    """raise when jtop fail. The message attached show the reason (same class shape as jetson-stats')."""

    def __init__(self, message: str, errors: str = "") -> None:
        super().__init__(message, errors)
        self.message = message
        self.errors = errors

    def __repr__(self) -> str:
        return str(self.message)

    def __str__(self) -> str:
        return str(self.message)


class NVPModel:
    """jetson-stats' NVPModel: ``name``, ``id``, ``models``; ``str()``/``repr()`` give the name."""

    def __init__(self, client: jtop, models: List[str], default: Dict[str, Any]) -> None:
        self._client = client
        self._nvp_models = models
        self._nvp_default = default
        self._status = [True] * len(models)
        self._running = False
        self._nvpmodel_now: Dict[str, Any] = {}

    def _update(self, nvp_status: Dict[str, Any]) -> None:
        self._status = nvp_status["status"]
        self._running = nvp_status["thread"]
        self._nvpmodel_now = nvp_status["model"]

    def is_running(self) -> bool:
        return self._running

    @property
    def id(self) -> int:
        return self._nvpmodel_now["id"]

    @property
    def name(self) -> str:
        return self._nvpmodel_now["name"]

    @property
    def status(self) -> List[bool]:
        return self._status

    @property
    def models(self) -> List[str]:
        return self._nvp_models

    def get_all_nvpmodels(self) -> List[str]:
        return self._nvp_models

    def get_default(self) -> Dict[str, Any]:
        return self._nvp_default

    def get_nvpmodel_id(self) -> int:
        return self._nvpmodel_now["id"]

    def get_nvpmodel_name(self) -> str:
        return self._nvpmodel_now["name"]

    def set_nvpmodel_id(self, nvpmodel_id: int, force: bool = False) -> None:
        if not isinstance(nvpmodel_id, int):
            raise ValueError("Use an int")
        if nvpmodel_id < 0 or nvpmodel_id > len(self._nvp_models) - 1:
            raise JtopException(
                f"NV Power Model ID {nvpmodel_id} does not exists! Range [0, {len(self._nvp_models) - 1}]"
            )
        # As in jetson-stats: compared with the mode this client last saw, not with the board's.
        if nvpmodel_id == self._nvpmodel_now["id"] and not force:
            return
        self._client._service_nvpmodel(nvpmodel_id)

    def set_nvpmodel_name(self, nvpmodel_name: str, force: bool = False) -> None:
        if not isinstance(nvpmodel_name, str):
            raise ValueError("Use a string")
        if nvpmodel_name not in self._nvp_models:
            raise JtopException(f"NV Power Model {nvpmodel_name} does not exists! Check all NVPmode available")
        if nvpmodel_name == self._nvpmodel_now["name"] and not force:
            return
        self._client._service_nvpmodel(self._nvp_models.index(nvpmodel_name))

    def __add__(self, number: int) -> int:
        return self._nvpmodel_now["id"] + number

    __radd__ = __iadd__ = __add__

    def __sub__(self, number: int) -> int:
        return self._nvpmodel_now["id"] - number

    __rsub__ = __isub__ = __sub__  # jetson-stats' own (asymmetric) arithmetic

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return self._nvpmodel_now["id"] == other
        if isinstance(other, str):
            return self._nvpmodel_now["name"] == other
        if isinstance(other, NVPModel):
            return self._nvpmodel_now["id"] == other._nvpmodel_now["id"]
        return False

    __hash__ = None  # type: ignore[assignment]  # jetson-stats defines __eq__ only: unhashable

    def __repr__(self) -> str:
        return self._nvpmodel_now["name"]


class JetsonClocks:
    """jetson-stats' JetsonClocks: truthy while the clocks are pinned; set through ``jetson.jetson_clocks = bool``."""

    def __init__(self, client: jtop) -> None:
        self._client = client
        self._enable = False
        self._thread = ""
        self._boot = False
        self._config = False

    def _update(self, jc_status: Dict[str, Any]) -> None:
        self._enable = jc_status["enable"]
        self._thread = jc_status["thread"]
        self._config = jc_status["config"]
        self._boot = jc_status["boot"]

    def set_enable(self, enable: bool) -> None:
        if not isinstance(enable, bool):
            raise ValueError("Use a boolean")
        if not self._config and not enable:
            raise JtopException("I cannot set jetson_clocks.\nPlease shutdown manually jetson_clocks")
        if self._thread in ["booting", "activating", "deactivating", "uncontrolled"]:
            return
        if enable is not self._enable:
            self._client._service_jetson_clocks(enable)

    def get_enable(self) -> bool:
        return self._enable

    def set_boot(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ValueError("Use a boolean")
        self._boot = value  # the simulated service keeps no boot configuration

    def get_boot(self) -> bool:
        return self._boot

    boot = property(get_boot, set_boot)

    def is_config(self) -> bool:
        return self._config

    def get_status(self) -> str:
        return "running" if self._enable else self._thread

    @property
    def status(self) -> str:
        return self.get_status()

    def __bool__(self) -> bool:
        return self._enable

    def __int__(self) -> int:
        return int(self._enable)

    __index__ = __int__

    def __and__(self, other: object) -> bool:
        return self._enable & bool(other)

    def __or__(self, other: object) -> bool:
        return self._enable | bool(other)

    def __xor__(self, other: object) -> bool:
        return self._enable ^ bool(other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return self._enable == other
        if isinstance(other, JetsonClocks):
            return self._enable == other._enable
        return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return str(self._enable)


_hang = {"release": threading.Event()}


def release_hung_clients() -> None:
    """Lets every ``start()`` blocked by FAKE_JTOP=hang fail (tests end their threads so); later ones hang again."""
    event, _hang["release"] = _hang["release"], threading.Event()
    event.set()


def _knob() -> Tuple[str, int]:
    value = os.environ.get(KNOB_ENV, "").strip()
    name, _, count = value.partition(":")
    return name, int(count) if count.isdigit() else 0


class jtop(threading.Thread):  # noqa: N801 - jetson-stats' own name
    """The client: a thread that takes one sample of the simulated board every ``interval`` seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(name="fake-jtop", daemon=True)
        self._interval = float(interval)
        self._server_interval = self._interval
        self._observers: Set[Callable[[jtop], Any]] = set()
        self._trigger = threading.Event()
        self._closed = threading.Event()
        self._error: Optional[Tuple[Any, BaseException, Any]] = None
        self._running = False
        self._stats: Dict[str, Any] = {}
        self._board: Dict[str, Any] = {"platform": _platform(), "libraries": dict(LIBRARIES)}
        self._nvpmodel: Optional[NVPModel] = None
        self._jetson_clocks: Optional[JetsonClocks] = None
        self._power_avg: Dict[str, int] = {}
        self._root = ""
        self._knob = ("", 0)
        self.updates = 0  # samples taken (not in jetson-stats: lets a test wait for one)

    # -- life cycle --

    def start(self) -> None:
        self._knob = _knob()
        name = self._knob[0]
        if name == "dead":
            raise JtopException(NOT_ACTIVE)
        if name == "denied":
            raise JtopException(NO_ACCESS)
        if name == "hang":
            _hang["release"].wait()
            raise JtopException(LOST)
        root = os.environ.get(ROOT_ENV, "")
        if not root or not os.path.isdir(root):
            raise JtopException(NOT_ACTIVE)  # no simulated board, so no service to talk to
        self._root = root
        service = os.environ.get(SERVICE_INTERVAL_ENV)
        # The service samples at the interval of the client that started it.
        self._server_interval = float(service) if service else self._interval
        self._board["hardware"] = board_hardware(root)
        modes, default = power_modes(root)
        if modes:
            models = [modes[i][0] for i in sorted(modes)]
            default_id = default if default in modes else min(modes)
            self._nvpmodel = NVPModel(self, models, {"name": modes[default_id][0], "id": default_id})
        self._jetson_clocks = JetsonClocks(self)
        self._get_data()
        self._running = True
        super().start()

    def run(self) -> None:
        name, count = self._knob
        try:
            while self._running and not self._closed.wait(self._server_interval):
                if count and self.updates >= count:
                    if name == "stop_after":
                        self._running = False
                        self._trigger.set()  # a waiting ok() answers False now
                        return
                    if name == "lost_after":
                        raise JtopException(LOST)
                    if name == "stall_after":
                        self._closed.wait()
                        return
                self._get_data()
        except Exception:  # noqa: BLE001 - stored and re-raised by ok(), as jetson-stats does
            self._error = sys.exc_info()
            self._trigger.set()

    def _get_data(self) -> None:
        root = self._root
        rails = ina3221_rails(root)
        for name, values in rails.items():  # PowerService: avg = (power + previous avg) // 2
            old = self._power_avg.get(name)
            values["avg"] = values["power"] if old is None else (values["power"] + old) // 2
            self._power_avg[name] = values["avg"]
        total: Dict[str, Any] = {"power": 0, "avg": 0}
        for input_rail in ("POM_5V_IN", "VDD_IN"):  # total_power(): the input rail, else the sum
            if input_rail in rails:
                total = rails.pop(input_rail)
                total["name"] = input_rail
                break
        else:
            for values in rails.values():
                total["power"] += values["power"]
                total["avg"] += values["avg"]
        mode_id, mode_name = current_mode(root)
        on = jetson_clocks_on(root)
        config = os.path.isfile(os.path.join(root, L4T_DFS_CONF))
        self._stats = {
            "power": {"rail": rails, "tot": total} if rails or "name" in total else {},
            "temperature": temperatures(root),
            "nvp": {
                "status": [True] * len(self._nvpmodel.models) if self._nvpmodel else [],
                "thread": False,
                "model": {"name": mode_name, "id": mode_id},
            },
            "jc": {
                "enable": on,
                "thread": "uncontrolled" if on and not config else "inactive",
                "config": config,
                "boot": False,
            },
        }
        if self._nvpmodel is not None:
            self._nvpmodel._update(self._stats["nvp"])
        if self._jetson_clocks is not None:
            self._jetson_clocks._update(self._stats["jc"])
        self.updates += 1
        self._trigger.set()
        for observer in list(self._observers):
            observer(self)

    def ok(self, spin: bool = False) -> bool:
        if not spin:
            if not self._trigger.is_set() and not self._trigger.wait(self._interval * TIMEOUT_GAIN):
                self._running = False
        if self._error:
            raise self._error[1].with_traceback(self._error[2])
        if self._running:
            self._trigger.clear()
        return self._running

    def close(self) -> None:
        self._running = False
        self._closed.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2.0)  # unlike jetson-stats: tests must not leave a sampling thread behind

    def __enter__(self) -> jtop:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - as jetson-stats
            pass
        return exc_tb is None

    def attach(self, observer: Callable[[jtop], Any]) -> None:
        self._observers.add(observer)

    def detach(self, observer: Callable[[jtop], Any]) -> None:
        self._observers.discard(observer)

    # -- the service's side of a request --

    def _service_nvpmodel(self, mode_id: int) -> None:
        apply_power_mode(self._root, mode_id)

    def _service_jetson_clocks(self, enable: bool) -> None:
        set_jetson_clocks(self._root, enable)

    # -- what jetson-stats exposes --

    @property
    def interval(self) -> float:
        return self._server_interval

    @property
    def interval_user(self) -> float:
        return self._interval

    @property
    def board(self) -> Dict[str, Any]:
        return self._board

    @property
    def power(self) -> Dict[str, Any]:
        return self._stats["power"]

    @property
    def temperature(self) -> Dict[str, Any]:
        return self._stats["temperature"]

    @property
    def nvpmodel(self) -> Optional[NVPModel]:
        return self._nvpmodel

    @nvpmodel.setter
    def nvpmodel(self, value: Any) -> None:
        if self._nvpmodel is None:
            raise JtopException("nvpmodel not available on this board")
        if isinstance(value, int):
            self._nvpmodel.set_nvpmodel_id(value)
        elif isinstance(value, str):
            self._nvpmodel.set_nvpmodel_name(value)
        # jetson-stats builds a ValueError here without raising it: other types are ignored.

    @property
    def jetson_clocks(self) -> Optional[JetsonClocks]:
        return self._jetson_clocks

    @jetson_clocks.setter
    def jetson_clocks(self, value: Any) -> None:
        if self._jetson_clocks is None:
            raise JtopException("jetson_clocks not available on this board")
        self._jetson_clocks.set_enable(value)


__all__ = ["JetsonClocks", "JtopException", "NVPModel", "jtop", "release_hung_clients"]
