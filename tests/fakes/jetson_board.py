"""A simulated NVIDIA Jetson Orin NX 16GB on L4T R36.4.0 (JetPack 6.1), for end-to-end tests.

``build_root(path)`` lays out the files the suite and jetson-stats read (device tree, L4T
release, nvpmodel, INA3221 hwmon, cpufreq, thermal zones, GPU devfreq, EMC clock) under
``path``; point ``BENCH_SYSTEM_ROOT`` at it. ``RailMover`` makes the power rails, CPU clocks
and temperatures move while a test runs. ``bin/tegrastats`` and the ``jtop`` stand-in
(``jtop/jtop/__init__.py``) read and change the same files; the latter also holds the
simulated nvpmodel / jetson_clocks logic this module reuses, so there is one copy of it.

Where a value comes from a real board the comment says so; the others (power-mode caps,
part and serial numbers, idle clocks) are plausible, not NVIDIA's exact figures.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import sys
import threading
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

FAKES_DIR = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.path.join(FAKES_DIR, "bin")  # holds the fake ``tegrastats``
JTOP_DIR = os.path.join(FAKES_DIR, "jtop")  # on PYTHONPATH, ``from jtop import jtop`` finds the stand-in
JTOP_FILE = os.path.join(JTOP_DIR, "jtop", "__init__.py")

MODEL = "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"
MODULE = "NVIDIA Jetson Orin NX (16GB ram)"  # jetson-stats' name for P-Number p3767-0000
SOC = "tegra234"
L4T = "36.4.0"
JETPACK = "6.1"
# Device-tree string lists: NUL-separated, NUL-terminated (carrier p3768 + module p3767-0000).
COMPATIBLE = b"nvidia,p3768-0000+p3767-0000\0nvidia,p3767-0000\0nvidia,tegra234\0"
NV_TEGRA_RELEASE = (
    "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
    "DATE: Fri Sep 13 04:36:44 UTC 2024\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)
PART_NUMBER = "699-13767-0000-300 L.3"  # 699-level part number: jetson-stats derives p3767-0000 from [5:9], [10:14]
SERIAL = "1424823012345"

# The INA3221 sits on I2C bus 1 at 0x40; hwmon1 is its hwmon device (JetPack 5/6 layout).
I2C_DEVICE = "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040"
INA3221_DRIVER = "sys/bus/i2c/drivers/ina3221"
HWMON = I2C_DEVICE + "/hwmon/hwmon1"
RAILS = ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")  # channels 1-3 of an Orin NX module
SHUNT_UOHM = 5000  # shunt{N}_resistor, in µΩ

CPUS = 8
CPU_MIN_KHZ = 115200
CPU_MAX_KHZ = 1984000  # Orin NX 16GB's cpuinfo_max_freq
CPU_IDLE_KHZ = 729600  # nvpmodel's MIN_FREQ on Orin: what tegrastats shows an idle core at
CPU_STEPS = [115200 + 76800 * i for i in range(25)] + [CPU_MAX_KHZ]  # 115.2 MHz ... 1958.4 MHz, 1984 MHz
GPU = "sys/class/devfreq/17000000.gpu"
GPU_STEPS = [306000000, 408000000, 510000000, 612000000, 714000000, 816000000, 918000000]  # Hz
EMC = "sys/kernel/debug/bpmp/debug/clk/emc"
EMC_MAX_HZ = 3199000000
EMC_IDLE_HZ = 2133000000
# (type, idle m°C): Orin's zones in kernel order; the cv* zones are offline on an NX (-256 °C).
THERMAL_ZONES = [
    ("cpu-thermal", 46500),
    ("gpu-thermal", 45750),
    ("cv0-thermal", -256000),
    ("cv1-thermal", -256000),
    ("cv2-thermal", -256000),
    ("soc0-thermal", 45250),
    ("soc1-thermal", 45500),
    ("soc2-thermal", 44750),
    ("tj-thermal", 46750),
]

# POWER_MODEL blocks as nvpmodel.conf writes them; ids and names are the Orin NX 16GB's
# (0 MAXN, 1 10W, 2 15W, 3 25W); the caps are illustrative.
_MODES = {
    # id: (name, online cores, CPU max kHz (-1: no cap), GPU max Hz (-1: no cap), EMC max Hz (0: no cap))
    0: ("MAXN", 8, -1, -1, 0),
    1: ("10W", 4, 1190400, 612000000, 2133000000),
    2: ("15W", 4, 1497600, 714000000, 0),
    3: ("25W", 8, 1728000, 816000000, 0),
}
DEFAULT_MODE = 2  # PM_CONFIG DEFAULT: not verified for JetPack 6.1 (only used by NVPModel.get_default())
POWER_MODES = {mode_id: spec[0] for mode_id, spec in _MODES.items()}


def load_jtop(name: str = "jtop") -> ModuleType:
    """A fresh copy of the jtop stand-in under ``name``, registered nowhere (it is one module, no submodules)."""
    spec = importlib.util.spec_from_file_location(name, JTOP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def service() -> ModuleType:
    """The stand-in's simulated nvpmodel/jetson_clocks logic and file helpers (a private copy)."""
    return load_jtop("_fake_jetson_service")


def install_jtop(monkeypatch: Any) -> ModuleType:
    """Makes ``from jtop import jtop`` give the stand-in for one test (undone with the monkeypatch)."""
    module = load_jtop()
    monkeypatch.setitem(sys.modules, "jtop", module)
    return module


def environment(root: str, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for a subprocess on the simulated board: its root, the fake tegrastats, the jtop stand-in."""
    env = dict(os.environ if base is None else base)
    env["BENCH_SYSTEM_ROOT"] = str(root)
    env["PATH"] = BIN_DIR + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = JTOP_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# --- building the root ----------------------------------------------------------------------------


def _write(root: str, rel: str, content: Any) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content if isinstance(content, bytes) else f"{content}\n".encode()
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _link(root: str, rel: str, target: str) -> None:
    """A relative symlink, as sysfs has them, so the tree stays valid wherever it is copied."""
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(os.path.relpath(os.path.join(root, target), os.path.dirname(path)), path)


def nvpmodel_conf() -> str:
    lines = ["# Simulated nvpmodel.conf of a Jetson Orin NX 16GB (p3767-0000)", ""]
    lines.append("< PARAM TYPE=FILE NAME=CPU_ONLINE >")
    lines += [f"CORE_{c} /sys/devices/system/cpu/cpu{c}/online" for c in range(CPUS)]
    lines += ["", "< PARAM TYPE=FILE NAME=TPC_POWER_GATING >", "TPC_PG_MASK /sys/devices/platform/gpu.0/tpc_pg_mask"]
    for cluster in range(CPUS // 4):
        cpu = cluster * 4
        lines += ["", f"< PARAM TYPE=CLOCK NAME=CPU_A78_{cluster} >"]
        for key, file in (("FREQ_TABLE", "available_frequencies"), ("MAX_FREQ", "max_freq"), ("MIN_FREQ", "min_freq")):
            lines.append(f"{key} /sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_{file}")
    lines += ["", "< PARAM TYPE=CLOCK NAME=GPU >"]
    for key, file in (("FREQ_TABLE", "available_frequencies"), ("MAX_FREQ", "max_freq"), ("MIN_FREQ", "min_freq")):
        lines.append(f"{key} /{GPU}/{file}")
    lines += ["", "< PARAM TYPE=CLOCK NAME=EMC >", "MAX_FREQ /sys/kernel/nvpmodel_emc_cap/emc_iso_cap"]
    for mode_id, (name, online, cpu_max, gpu_max, emc_max) in _MODES.items():
        lines += ["", f"< POWER_MODEL ID={mode_id} NAME={name} >"]
        lines += [f"CPU_ONLINE CORE_{c} {1 if c < online else 0}" for c in range(CPUS)]
        lines.append("TPC_POWER_GATING TPC_PG_MASK 0")
        for cluster in range(CPUS // 4):
            lines += [f"CPU_A78_{cluster} MIN_FREQ {CPU_IDLE_KHZ}", f"CPU_A78_{cluster} MAX_FREQ {cpu_max}"]
        lines += [f"GPU MIN_FREQ {GPU_STEPS[0]}", f"GPU MAX_FREQ {gpu_max}", f"EMC MAX_FREQ {emc_max}"]
    lines += ["", "# mandatory section to configure the default mode", f"< PM_CONFIG DEFAULT={DEFAULT_MODE} >", ""]
    return "\n".join(lines)


def build_root(path: Any, power_mode_id: int = 0, jetson_clocks: bool = False) -> Dict[str, Any]:
    """Lays the simulated board out under ``path``; returns its paths and the facts a test expects.

    ``jetson_clocks=True``: the clocks were pinned before jtop's service started, so it holds
    no stored configuration and cannot switch them off ("uncontrolled" in jetson-stats).
    """
    root = os.path.abspath(str(path))
    svc = service()
    # Identity. /proc/device-tree is a link to the firmware's tree, as on the board.
    base = "sys/firmware/devicetree/base"
    _write(root, f"{base}/model", MODEL.encode() + b"\0")
    _write(root, f"{base}/compatible", COMPATIBLE)
    _write(root, f"{base}/serial-number", SERIAL.encode() + b"\0")
    _link(root, "proc/device-tree", base)
    _write(root, "etc/nv_tegra_release", NV_TEGRA_RELEASE.encode())
    _write(root, svc.EEPROM_PART_NUMBER, PART_NUMBER)

    # nvpmodel. Its status file reads "pmode:0002 fmode:quiet": the format public scripts and
    # nvpmodel users show; jetson-stats never reads it (it parses `nvpmodel -q`: "NV Power Mode: 15W\n2").
    _write(root, svc.NVPMODEL_CONF, nvpmodel_conf())

    # INA3221: the device, reached through the driver's and the bus' links like on the board.
    _write(root, f"{I2C_DEVICE}/name", "ina3221")
    _write(root, f"{HWMON}/name", "ina3221")
    for channel, rail in enumerate(RAILS, start=1):
        _write(root, f"{HWMON}/in{channel}_label", rail)
        _write(root, f"{HWMON}/in{channel}_enable", 1)
        _write(root, f"{HWMON}/shunt{channel}_resistor", SHUNT_UOHM)
        _write(root, f"{HWMON}/curr{channel}_max", 32760)  # warning limit, mA
        _write(root, f"{HWMON}/curr{channel}_crit", 32760)  # critical limit, mA
    # The driver's 7th channel sums the shunt voltages: a label, but no rail.
    _write(root, f"{HWMON}/in7_label", "sum of shunt voltages")
    _link(root, f"{INA3221_DRIVER}/1-0040", I2C_DEVICE)
    _link(root, "sys/bus/i2c/devices/1-0040", I2C_DEVICE)
    _link(root, "sys/class/hwmon/hwmon1", HWMON)
    write_rails(root, {"VDD_IN": 5000, "VDD_CPU_GPU_CV": 660, "VDD_SOC": 1300})

    # cpufreq: one policy per cluster of four cores; cpuN/cpufreq links to it, as on Orin.
    cpu = "sys/devices/system/cpu"
    for policy in range(0, CPUS, 4):
        folder = f"{cpu}/cpufreq/policy{policy}"
        cores = " ".join(str(c) for c in range(policy, policy + 4))
        for name, value in (
            ("affected_cpus", cores),
            ("related_cpus", cores),
            ("cpuinfo_min_freq", CPU_MIN_KHZ),
            ("cpuinfo_max_freq", CPU_MAX_KHZ),
            ("scaling_min_freq", CPU_IDLE_KHZ),
            ("scaling_max_freq", CPU_MAX_KHZ),
            ("scaling_cur_freq", CPU_IDLE_KHZ),
            ("scaling_governor", "schedutil"),
            ("scaling_available_governors", "userspace ondemand performance schedutil"),
            ("scaling_available_frequencies", " ".join(str(f) for f in CPU_STEPS)),
            ("scaling_driver", "tegra194"),
        ):
            _write(root, f"{folder}/{name}", value)
    for core in range(CPUS):
        _write(root, f"{cpu}/cpu{core}/online", 1)
        _link(root, f"{cpu}/cpu{core}/cpufreq", f"{cpu}/cpufreq/policy{core - core % 4}")
    for name in ("online", "present", "possible"):
        _write(root, f"{cpu}/{name}", f"0-{CPUS - 1}")

    for index, (kind, temp) in enumerate(THERMAL_ZONES):
        _write(root, f"sys/class/thermal/thermal_zone{index}/type", kind)
        _write(root, f"sys/class/thermal/thermal_zone{index}/temp", temp)

    # GPU (devfreq, Hz) and its device node, which jetson-stats finds by device/of_node/name.
    for name, value in (
        ("cur_freq", GPU_STEPS[0]),
        ("min_freq", GPU_STEPS[0]),
        ("max_freq", GPU_STEPS[-1]),
        ("available_frequencies", " ".join(str(f) for f in GPU_STEPS)),
        ("governor", "nvhost_podgov"),
        ("available_governors", "nvhost_podgov userspace performance simple_ondemand"),
        ("device/of_node/name", "gpu"),
        ("device/load", 0),
        ("device/railgate_enable", 1),
    ):
        _write(root, f"{GPU}/{name}", value)
    # EMC: where jetson-stats' read_emc() looks first on Orin (bpmp debugfs, Hz), and the
    # activity counter it needs to report EMC at all (its value // the rate in kHz = load %).
    for name, value in (("rate", EMC_IDLE_HZ), ("max_rate", EMC_MAX_HZ), ("min_rate", 204000000)):
        _write(root, f"{EMC}/{name}", value)
    _write(root, f"{EMC}/mrq_rate_locked", 0)
    _write(root, "sys/kernel/actmon_avg_activity/mc_all", 4 * (EMC_IDLE_HZ // 1000))
    _write(root, "sys/kernel/nvpmodel_emc_cap/emc_iso_cap", 0)

    # The mode, applied like nvpmodel would; then jetson_clocks as jtop's service finds it.
    _write(root, svc.NVPMODEL_STATUS, f"pmode:{DEFAULT_MODE:04d} fmode:quiet")
    _write(root, svc.JETSON_CLOCKS_STATE, 0)
    svc.apply_power_mode(root, power_mode_id)
    if jetson_clocks:
        svc.set_jetson_clocks(root, True)
        os.remove(os.path.join(root, svc.L4T_DFS_CONF))  # pinned before the service could store the clocks
    else:
        svc.store_clocks_config(root)  # the service does this at start while the clocks are free

    return {
        "root": root,
        "ina3221": os.path.join(root, INA3221_DRIVER),  # Ina3221Source(root=...)
        "hwmon": os.path.join(root, HWMON),
        "sys": os.path.join(root, "sys"),
        "nvpmodel_conf": os.path.join(root, svc.NVPMODEL_CONF),
        "nvpmodel_status": os.path.join(root, svc.NVPMODEL_STATUS),
        "jetson_clocks_file": os.path.join(root, svc.JETSON_CLOCKS_STATE),
        "bin": BIN_DIR,
        "jtop_path": JTOP_DIR,
        "model": MODEL,
        "module": MODULE,
        "soc": SOC,
        "l4t": L4T,
        "jetpack": JETPACK,
        "power_mode_id": power_mode_id,
        "power_mode": POWER_MODES[power_mode_id],
        "power_modes": dict(POWER_MODES),
        "jetson_clocks": jetson_clocks,
        "rails": RAILS,
        "cpus": CPUS,
        "cpu_max_khz": CPU_MAX_KHZ,
    }


# --- reading and moving it --------------------------------------------------------------------------


def current_power_mode(root: Any) -> Tuple[int, str]:
    """(id, name) of the mode the simulated board is in, from its nvpmodel status file and conf."""
    return service().current_mode(str(root))


def set_power_mode(root: Any, mode: Any) -> None:
    """``nvpmodel -m``: by id or by name."""
    if isinstance(mode, str):
        mode = {name: mode_id for mode_id, name in POWER_MODES.items()}[mode]
    service().apply_power_mode(str(root), mode)


def jetson_clocks_on(root: Any) -> bool:
    return service().jetson_clocks_on(str(root))


def write_rails(root: Any, rails_mw: Dict[str, float], tick: int = 0) -> Dict[str, Tuple[int, int]]:
    """Writes each rail's bus voltage (mV) and current (mA) for the given power; returns {rail: (mV, mA)}."""
    write = service().write_atomic
    hwmon = os.path.join(str(root), HWMON)
    written: Dict[str, Tuple[int, int]] = {}
    shunt_uv = 0
    for channel, rail in enumerate(RAILS, start=1):
        if rail not in rails_mw:
            continue
        mv = 5000 + 8 * ((tick + channel) % 5)  # a 5 V module input that wobbles a little
        ma = max(0, round(rails_mw[rail] * 1000 / mv))
        write(os.path.join(hwmon, f"in{channel}_input"), f"{mv}\n")
        write(os.path.join(hwmon, f"curr{channel}_input"), f"{ma}\n")
        write(os.path.join(hwmon, f"in{channel + 3}_input"), f"{ma * SHUNT_UOHM // 1000}\n")  # shunt, µV
        shunt_uv += ma * SHUNT_UOHM // 1000
        written[rail] = (mv, ma)
    write(os.path.join(hwmon, "in7_input"), f"{shunt_uv}\n")
    return written


class RailMover:
    """Moves the simulated board while a test runs: rails every tick, CPU clocks and temperatures every 4th.

    VDD_IN follows a sine between ``low_mw`` and ``high_mw`` over ``period_ticks`` ticks
    (equal bounds: constant power); the other rails follow it. One CPU cluster stays at its
    allowed maximum (the benchmark's busy core), the other steps between its minimum and
    maximum, unless jetson_clocks pins both. Deterministic in the tick number; every file is
    replaced whole, so a reader never sees half a number.
    """

    def __init__(
        self,
        root: Any,
        interval_s: float = 0.05,
        low_mw: float = 5000,
        high_mw: float = 9000,
        period_ticks: int = 40,
    ) -> None:
        self.root = str(root)
        self.interval_s = interval_s
        self.low_mw, self.high_mw, self.period_ticks = low_mw, high_mw, max(1, period_ticks)
        self.ticks = 0
        self.last: Dict[str, float] = {}  # mW per rail, as last written (from the rounded mV and mA)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def rails_at(self, tick: int) -> Dict[str, float]:
        mid, amp = (self.low_mw + self.high_mw) / 2, (self.high_mw - self.low_mw) / 2
        vdd_in = mid + amp * math.sin(2 * math.pi * tick / self.period_ticks)
        return {
            "VDD_IN": vdd_in,
            "VDD_CPU_GPU_CV": 0.45 * (vdd_in - 4200) + 300,
            "VDD_SOC": 1300 + 0.1 * (vdd_in - 5000),
        }

    def step(self) -> None:
        tick = self.ticks
        written = write_rails(self.root, self.rails_at(tick), tick)
        self.last = {rail: mv * ma / 1000 for rail, (mv, ma) in written.items()}
        if tick % 4 == 0:
            self._move_clocks(tick // 4)
            self._move_temperatures(tick // 4)
        self.ticks += 1

    def _move_clocks(self, n: int) -> None:
        svc = service()
        pinned = svc.jetson_clocks_on(self.root)
        for policy in range(0, CPUS, 4):
            if not any(svc.cpu_online(self.root, c) for c in range(policy, policy + 4)):
                continue  # an offline cluster's policy keeps its last value
            folder = os.path.join(self.root, "sys/devices/system/cpu/cpufreq", f"policy{policy}")
            low = int(svc.read(os.path.join(folder, "scaling_min_freq")) or CPU_IDLE_KHZ)
            high = int(svc.read(os.path.join(folder, "scaling_max_freq")) or CPU_MAX_KHZ)
            steps: List[int] = [f for f in CPU_STEPS if low <= f <= high] or [high]
            khz = high if pinned or policy == 0 else steps[(n * 5) % len(steps)]
            svc.write_atomic(os.path.join(folder, "scaling_cur_freq"), f"{khz}\n")

    def _move_temperatures(self, n: int) -> None:
        write = service().write_atomic
        for index, (_kind, idle) in enumerate(THERMAL_ZONES):
            if idle < 0:
                continue  # offline zones stay at -256 °C
            celsius_m = idle + 1500 * math.sin(2 * math.pi * (n + index) / 30)
            value = int(round(celsius_m / 31.25) * 31.25)  # the sensors' 1/32 °C steps
            write(os.path.join(self.root, f"sys/class/thermal/thermal_zone{index}/temp"), f"{value}\n")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.step()

    def __enter__(self) -> RailMover:
        self.step()  # the first values exist before the test reads anything
        self._thread = threading.Thread(target=self._run, name="rail-mover", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
