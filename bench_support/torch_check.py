"""Is a usable torch/torchvision here? One line that says what is wrong on this board, and what to install.

    python -m bench_support.torch_check [cpu|cuda|jetson]    exit 0, or 2 with the line on stderr

run.sh calls it before the benchmarks, and the project's conftest.py before the plugin
loads, so a missing or mismatched torch is one line rather than a collection traceback.
Nothing here is imported by the library: it must work where torch does not.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from typing import Any, Optional, Tuple

from bench_support.measure.jetson import jetpack_of, l4t_release
from bench_support.measure.machine import detect_platform

NVIDIA_GUIDE = "docs.nvidia.com/deeplearning/frameworks/install-pytorch-jetson-platform"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _version(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:2])


def torchvision_for(torch_version: str) -> Optional[str]:
    """The torchvision minor series built against a torch 2.x (0.16 for 2.1, ..., 0.29 for 2.14)."""
    major_minor = _version(torch_version)
    if len(major_minor) == 2 and major_minor[0] == 2:
        return f"0.{major_minor[1] + 15}"
    return None


def _first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, else its type (messages can be empty or start blank)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _missing(exc: BaseException, module: str) -> bool:
    """The module itself is absent (not a failure inside it that happens to name it)."""
    return isinstance(exc, ModuleNotFoundError) and exc.name == module


def _where(root: str) -> str:
    l4t = l4t_release(root)
    if l4t is None:
        return "this Jetson (no readable /etc/nv_tegra_release: which JetPack?)"
    jetpack = jetpack_of(l4t)
    return f"JetPack {jetpack} (L4T R{l4t})" if jetpack else f"L4T R{l4t}"


def remedy(platform: str, root: str = "/") -> str:
    """What to install on this board: by JetPack release on a Jetson, by build elsewhere."""
    if platform == "jetson":
        return (
            f"install NVIDIA's torch wheel for {_where(root)} into the system Python, and a torchvision built "
            f"against it (see {NVIDIA_GUIDE}); the jetson env uses the system site packages and never reinstalls torch"
        )
    if platform == "cuda":
        return "recreate the env with a CUDA build of torch for this driver (rm -rf .tox/cuda; ./run.sh cuda)"
    return "recreate the env: rm -rf .tox/cpu and run ./run.sh again"


def torchvision_remedy(platform: str, version: str, root: str = "/") -> str:
    wanted = torchvision_for(version)
    series = f"torchvision {wanted}" if wanted else "the torchvision release for it"
    if platform == "jetson":
        # A registry torchvision pins the registry's torch and would replace NVIDIA's with a CPU-only build.
        return (
            f"build {series} from source against NVIDIA's torch {version} (or install a wheel built for "
            f"{_where(root)} with pip --no-deps; see {NVIDIA_GUIDE})"
        )
    return f"install {series}.x, the series for torch {version}"


def gpu_required() -> bool:
    """False with BENCH_REQUIRE_GPU=0: a cuda/jetson env may then run on the CPU (the simulated Jetson of the tests)."""
    return os.environ.get("BENCH_REQUIRE_GPU", "1") != "0"


def problem(
    platform: str, root: str = "/", importer: Any = importlib.import_module, import_torchvision: bool = True
) -> Optional[str]:
    """None if torch and torchvision import and suit ``platform``; else the one line that says why not.

    ``import_torchvision=False`` only looks for torchvision (importing it costs ~3 s, which every pytest
    start would pay: the conftest guard); run.sh and tox run the whole check before the benchmarks.
    """
    if platform == "auto":
        platform = detect_platform(root)
    board = {"jetson": "on this Jetson", "cuda": "on this GPU machine"}.get(platform, "here")
    try:
        torch = importer("torch")
    except ImportError as exc:
        detail = "" if _missing(exc, "torch") else f" ({_first_line(exc)})"
        return f"torch does not import {board}{detail}: {remedy(platform, root)}"
    except Exception as exc:  # noqa: BLE001 - a broken wheel raises OSError (missing libcudart), RuntimeError
        return f"torch fails to import {board} ({_first_line(exc)}): {remedy(platform, root)}"
    version = str(getattr(torch, "__version__", "?"))
    if platform in ("jetson", "cuda") and gpu_required():
        cuda_build = getattr(getattr(torch, "version", None), "cuda", None)
        if not cuda_build:
            return f"torch {version} is a CPU-only build {board} (the GPU would go unused): {remedy(platform, root)}"
        try:
            usable = bool(torch.cuda.is_available())
        except Exception:  # noqa: BLE001 - a driver that cannot be queried is no usable GPU either
            usable = False
        if not usable:
            return (
                f"torch {version} (CUDA {cuda_build}) sees no usable GPU {board}: the driver is missing or older "
                f"than this build needs (nvidia-smi says which), or the wheel is not built for this board; "
                f"{remedy(platform, root)}; BENCH_REQUIRE_GPU=0 runs on the CPU anyway"
            )
    fix = torchvision_remedy(platform, version, root)
    if not import_torchvision:
        found = importlib.util.find_spec("torchvision") is not None
        return None if found else f"torchvision is not installed {board}: {fix}"
    try:
        importer("torchvision")
    except ImportError as exc:
        if _missing(exc, "torchvision"):
            return f"torchvision is not installed {board}: {fix}"
        return f"torchvision does not import {board} ({_first_line(exc)}): {fix}"
    except Exception as exc:  # noqa: BLE001 - "operator torchvision::nms does not exist": built for another torch
        return f"torchvision does not match torch {version} ({_first_line(exc)}): {fix}"
    return None


def main(argv: Optional[list] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    platform = args[0] if args else os.environ.get("BENCH_PLATFORM") or "auto"
    line = problem(platform)
    if line:
        print(f"edge-bench: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
