"""Facts about the device a run happened on.

One small function per family of facts, each reading /proc and /sys defensively and
leaving a key out rather than inventing it. Every function takes the filesystem root
as a parameter so tests can hand it a fake tree.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import socket
import sys
import unicodedata
from typing import Any, Dict, List, Optional, Tuple

from bench_support.errors import UserError
from bench_support.measure.jetson import jetson_facts
from bench_support.measure.netdev import interface_facts
from bench_support.measure.sysfs import SYSTEM_ROOT_ENV, rooted
from bench_support.measure.sysfs import read_text as _read

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MALLOC_ARENA_MAX",
)


_join = rooted


# --- identity -------------------------------------------------------------------------


def board_model(root: str = "/") -> Optional[str]:
    """The board's own name: device-tree model (Jetson, Raspberry Pi), else DMI product."""
    model = _read(_join(root, "/proc/device-tree/model"))
    if model:
        return model
    product = _read(_join(root, "/sys/class/dmi/id/product_name"))
    if product and product.lower() not in ("", "to be filled by o.e.m.", "system product name", "default string"):
        vendor = _read(_join(root, "/sys/class/dmi/id/sys_vendor"))
        return f"{vendor} {product}" if vendor and vendor.lower() not in product.lower() else product
    return None


def cpu_model(root: str = "/") -> Optional[str]:
    text = _read(_join(root, "/proc/cpuinfo")) or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or None


#: The longest device id, in UTF-8 bytes (a CJK character takes 3): it names a folder, and eCryptfs (encrypted home
#: folders) allows 143 bytes in a name where most file systems allow 255.
DEVICE_ID_MOST_BYTES = 128


def sanitise(text: str) -> str:
    """Lower-case letters and digits of any script (with their accents), '.', '_' and single dashes: safe as a folder
    name everywhere, and two names whose letters or digits differ never share one.

    NFC first, so a name typed composed or decomposed is one folder; every other character (separators, spaces,
    punctuation, controls) becomes a dash; no dash or dot at either end, so never "." or "..". A name with no letter
    or digit is "unknown". The length is :func:`device_id`'s concern.
    """
    return _folder(text) or "unknown"


def _folder(text: str) -> str:
    text = unicodedata.normalize("NFC", re.sub(r"\(r\)|\(tm\)", "", unicodedata.normalize("NFC", text).lower()))
    kept: List[str] = []
    in_word = False  # after a letter or digit (or its marks)
    for char in text:
        if char.isalnum() or (in_word and unicodedata.category(char).startswith("M")):
            kept.append(char)  # a mark NFC could not compose (Devanagari's vowel signs) is part of its letter
            in_word = True
        else:
            if char in "._":
                kept.append(char)
            elif not kept or kept[-1] != "-":
                kept.append("-")
            in_word = False
    folder = "".join(kept).strip("-.")
    return folder if any(char.isalnum() for char in folder) else ""


def device_name_option(name: str) -> str:
    """``--device-name``'s value, checked: UserError (one line) where it cannot name a results folder of its own."""
    shown = repr(name if len(name) <= 40 else name[:40] + "...")
    if not name.strip():
        raise UserError(f"--device-name {shown}: an empty name (an unset variable?); give one, or leave the option out")
    folder = _folder(name)
    if not folder:
        raise UserError(f"--device-name {shown}: no letter or digit to name its results folder by")
    size = len(folder.encode())
    if size > DEVICE_ID_MOST_BYTES:
        raise UserError(f"--device-name {shown}: {size} bytes as a folder name, at most {DEVICE_ID_MOST_BYTES}")
    return name


def device_id(override: Optional[str] = None, root: str = "/", hostname: Optional[str] = None) -> str:
    """Folder name of this device's results: board (or CPU) model plus the hostname.

    ``override`` (``--device-name``) is checked by :func:`device_name_option` at parse time; a model and hostname
    longer than :data:`DEVICE_ID_MOST_BYTES` are cut, with a hash of the whole so that two long ones stay apart.
    """
    if override:
        return sanitise(override)
    model = board_model(root) or cpu_model(root) or platform.machine() or "unknown"
    host = hostname if hostname is not None else socket.gethostname()
    folder = sanitise(f"{model}-{host}" if host else model)
    if len(folder.encode()) <= DEVICE_ID_MOST_BYTES:
        return folder
    tail = "-" + hashlib.sha256(folder.encode()).hexdigest()[:8]
    head = folder.encode()[: DEVICE_ID_MOST_BYTES - len(tail)].decode(errors="ignore")
    return sanitise(head) + tail


def detect_platform(root: str = "/") -> str:
    """cpu, cuda or jetson — the same rule run.sh applies before any Python env exists."""
    if os.path.exists(_join(root, "/etc/nv_tegra_release")):
        return "jetson"
    model = (_read(_join(root, "/proc/device-tree/model")) or "").lower()
    if "jetson" in model or "nvidia" in model:
        return "jetson"
    gpus = _join(root, "/proc/driver/nvidia/gpus")
    if os.path.isdir(gpus) and os.listdir(gpus):
        return "cuda"
    return "cpu"


# --- families of facts ----------------------------------------------------------------


def cpu_facts(root: str = "/") -> Dict[str, Any]:
    facts: Dict[str, Any] = {}
    model = cpu_model(root)
    if model:
        facts["model"] = model
    facts["logical_cores"] = os.cpu_count()
    try:
        facts["usable_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    cpufreq = _join(root, "/sys/devices/system/cpu/cpu0/cpufreq")
    governor = _read(os.path.join(cpufreq, "scaling_governor"))
    if governor:
        facts["governor"] = governor
    for name, key in (("scaling_cur_freq", "freq_cur_mhz"), ("cpuinfo_max_freq", "freq_max_mhz")):
        value = _read(os.path.join(cpufreq, name))
        if value and value.isdigit():
            facts[key] = int(value) // 1000
    return facts


def memory_facts(root: str = "/") -> Dict[str, Any]:
    facts: Dict[str, Any] = {}
    text = _read(_join(root, "/proc/meminfo")) or ""
    for key, name in (("MemTotal", "total_mb"), ("MemAvailable", "available_mb"), ("SwapTotal", "swap_mb")):
        match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        if match:
            facts[name] = int(match.group(1)) // 1024
    return facts


def system_facts() -> Dict[str, Any]:
    facts: Dict[str, Any] = {"kernel": platform.release(), "os": platform.system(), "arch": platform.machine()}
    libc, version = platform.libc_ver()
    if libc:
        facts["libc"] = f"{libc} {version}"
    facts["python"] = platform.python_version()
    facts["python_implementation"] = platform.python_implementation()
    return facts


def thread_facts() -> Dict[str, Any]:
    facts: Dict[str, Any] = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    try:
        import torch

        facts["torch_num_threads"] = torch.get_num_threads()
        facts["torch_num_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:
        pass
    return facts


def torch_facts() -> Dict[str, Any]:
    """Which torch build ran: it explains most of a device's baseline RSS."""
    facts: Dict[str, Any] = {}
    try:
        import torch
    except ImportError:
        return {"available": False}
    facts["version"] = torch.__version__
    facts["cuda_build"] = torch.version.cuda  # None for a CPU-only build
    facts["build"] = "cuda" if torch.version.cuda else "cpu"
    facts["cuda_available"] = torch.cuda.is_available()
    if facts["cuda_available"]:
        facts["gpu_name"] = torch.cuda.get_device_name(0)
        facts["gpu_count"] = torch.cuda.device_count()
        facts["cudnn"] = torch.backends.cudnn.version()
    version = _torchvision_version()
    if version:
        facts["torchvision"] = version
    return facts


def _torchvision_version() -> Optional[str]:
    """torchvision's ``__version__`` (``0.29.1+cu130``; the package metadata drops the build tag), without importing
    it where this process has not: a project that never uses it keeps its 170 MB and its second of start-up."""
    loaded = sys.modules.get("torchvision")
    if loaded is not None:
        return getattr(loaded, "__version__", None)
    try:
        spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = re.search(
            r"""^__version__\s*=\s*['"]([^'"]+)['"]""", _read(os.path.join(folder, "version.py")) or "", re.M
        )
        if found:
            return found.group(1)
    return None


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts(root: str = "/") -> List[Tuple[str, str, str]]:
    """(mount point, filesystem type, source) for every mount, from mountinfo."""
    text = _read(_join(root, "/proc/self/mountinfo")) or ""
    result = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        result.append((_unescape_mount(fields[4]), tail[0], tail[1]))
    return result


def filesystem_of(path: str, root: str = "/") -> Optional[Dict[str, str]]:
    """Filesystem type, mount point and source of the mount holding ``path``.

    Longest matching mount point wins; the last mount on one point wins (it hides the
    earlier ones). Detected, never assumed from a directory's name.
    """
    real = os.path.realpath(path)
    best = None
    for mount_point, fs_type, source in mounts(root):
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= len(best[0])):
            best = (mount_point, fs_type, source)
    if best is None:
        return None
    return {"fs_type": best[1], "mount_point": best[0], "source": best[2]}


def collect(paths: Optional[Dict[str, str]] = None, root: str = "/") -> Dict[str, Any]:
    """Every family, keyed by family; ``paths`` names directories whose filesystem matters."""
    info: Dict[str, Any] = {
        "board": board_model(root),
        "platform": detect_platform(root),
        "cpu": cpu_facts(root),
        "memory": memory_facts(root),
        "system": system_facts(),
        "threads": thread_facts(),
        "torch": torch_facts(),
        "network": interface_facts(root) or None,
    }
    overlay = os.environ.get(SYSTEM_ROOT_ENV)
    if overlay:  # test-only: a run on a simulated board says so rather than pass for a real one
        info["system_root_overlay"] = overlay
    jetson = jetson_facts(root, info["platform"] == "jetson")
    if jetson:
        info["jetson"] = jetson
    if paths:
        info["filesystems"] = {name: filesystem_of(path, root) for name, path in paths.items()}
    return {key: value for key, value in info.items() if value is not None}


#: Facts that do not drift between two runs of the same configuration; only these are
#: compared (the whole dict differs at every run: frequency, available memory).
STABLE_KEYS = (
    "device_id",
    "board",
    "platform",
    "cpu.model",
    "cpu.logical_cores",
    "cpu.usable_cores",
    "cpu.governor",
    "memory.total_mb",
    "system.kernel",
    "system.libc",
    "system.python",
    "threads.OMP_NUM_THREADS",
    "threads.OMP_WAIT_POLICY",
    "threads.MKL_NUM_THREADS",
    "threads.MALLOC_ARENA_MAX",
    "threads.torch_num_threads",
    "torch.version",
    "torch.build",
    "torch.torchvision",
    "torch.cuda_available",
    "torch.gpu_name",
    "jetson.l4t",
    "jetson.power_mode",
    "jetson.jetson_clocks",
    "filesystems.data_dir.fs_type",
    "filesystems.results_dir.fs_type",
)


def _lookup(info: Dict[str, Any], dotted: str) -> Any:
    node: Any = info
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def stable_differences(current: Dict[str, Any], saved: Dict[str, Any]) -> List[str]:
    """'key: saved -> current' for each stable fact that changed between two runs."""
    changes = []
    for key in STABLE_KEYS:
        old, new = _lookup(saved, key), _lookup(current, key)
        if old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes
