"""What a Jetson says about itself: L4T and JetPack releases, power mode, clocks.

Read from the filesystem first (the L4T release file, nvpmodel's status and
configuration, devfreq, the EMC clock in debugfs), so the facts exist without the jtop
service; jtop's view is added, and preferred, when its service answers.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Optional, Tuple

from bench_support.measure.sysfs import read_text as _read
from bench_support.measure.sysfs import rooted as _join

#: JetPack release of each L4T release (NVIDIA's JetPack archive); a major alone gives the series.
JETPACK_OF_L4T = {
    "38.4": "7.1",
    "38.2": "7.0",
    "36.4.4": "6.2.1",
    "36.4.3": "6.2",
    "36.4.0": "6.1",
    "36.3.0": "6.0",
    "36.2.0": "6.0 DP",
    "35.6.0": "5.1.4",
    "35.5.0": "5.1.3",
    "35.4.1": "5.1.2",
    "35.3.1": "5.1.1",
    "35.2.1": "5.1",
    "35.1.0": "5.0.2",
    **{f"32.7.{n}": f"4.6.{n}" for n in range(1, 7)},
    "32.6.1": "4.6",
}
_JETPACK_SERIES = {"38": "7", "36": "6", "35": "5", "34": "5", "32": "4"}


def l4t_release(root: str = "/") -> Optional[str]:
    """L4T release from /etc/nv_tegra_release ('# R36 (release), REVISION: 4.0, ...' -> '36.4.0')."""
    text = _read(_join(root, "/etc/nv_tegra_release"))
    match = re.search(r"R(\d+)\D.*?REVISION:\s*([\d.]+)", text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def jetpack_of(l4t: str) -> Optional[str]:
    """JetPack release for an L4T release: exact where listed, else the major series ('6.x')."""
    for key in (l4t, ".".join(l4t.split(".")[:2])):
        if key in JETPACK_OF_L4T:
            return JETPACK_OF_L4T[key]
    series = _JETPACK_SERIES.get(l4t.split(".")[0])
    return f"{series}.x" if series else None


def nvpmodel_mode(root: str = "/") -> Optional[Tuple[int, Optional[str]]]:
    """(id, name) of the power mode, from nvpmodel's status file and its configuration (no jtop needed)."""
    status = _read(_join(root, "/var/lib/nvpmodel/status")) or ""
    match = re.search(r"pmode:(\d+)", status)
    if not match:
        return None
    mode = int(match.group(1))
    conf = _read(_join(root, "/etc/nvpmodel.conf")) or ""
    pattern = r"^\s*<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+?)\s*>"  # commented-out lines do not count
    names = {int(i): n for i, n in re.findall(pattern, conf, re.MULTILINE)}
    return mode, names.get(mode)


def devfreq_clocks_mhz(root: str = "/") -> Dict[str, int]:
    """Current clock of each devfreq device (the GPU on a Jetson), MHz, keyed by the device's name."""
    clocks = {}
    base = _join(root, "/sys/class/devfreq")
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        value = _read(os.path.join(base, name, "cur_freq"))
        if value and value.isdigit():
            clocks[name] = int(value) // 1_000_000
    return clocks


def jetson_facts(root: str = "/", is_jetson: bool = False) -> Dict[str, Any]:
    """L4T/JetPack, power mode and clocks from the filesystem; jtop's view when its service answers.

    Empty on a machine that is neither ``is_jetson`` nor has an L4T release file.
    """
    facts: Dict[str, Any] = {}
    l4t = l4t_release(root)
    if l4t:
        facts["l4t"] = l4t
        facts["jetpack"] = jetpack_of(l4t)
    if not facts and not is_jetson:
        return facts
    mode = nvpmodel_mode(root)
    if mode is not None:
        facts["power_mode_id"], facts["power_mode"] = mode
    clocks = devfreq_clocks_mhz(root)
    if clocks:
        facts["devfreq_mhz"] = clocks
    emc = _read(_join(root, "/sys/kernel/debug/bpmp/debug/clk/emc/rate"))
    if emc and emc.isdigit():
        facts["emc_mhz"] = int(emc) // 1_000_000
    try:
        from jtop import jtop  # jetson-stats; only installed in the jetson environment
    except ImportError:
        facts["jtop_unavailable"] = "jetson-stats not installed"
        return facts
    try:
        with jtop() as jetson:
            hardware = jetson.board.get("hardware", {})
            for key in ("Model", "Module", "SoC", "L4T", "Jetpack"):
                if hardware.get(key):
                    facts[key.lower()] = hardware[key]
            mode = jetson.nvpmodel
            if mode is not None:  # a board without nvpmodel keeps what the files said
                facts["power_mode"] = str(mode.name)
            if jetson.jetson_clocks is not None:
                facts["jetson_clocks"] = bool(jetson.jetson_clocks)
    except Exception as exc:  # noqa: BLE001 - JtopException and socket errors alike
        facts["jtop_unavailable"] = f"jtop service not reachable: {exc}".splitlines()[0]
    return facts
