"""Is a usable torch/torchvision here? One line that says what is wrong on this board, and what to install.

    python -m bench_support.torch_check [cpu|cuda|jetson]    exit 0, or 2 with the line on stderr

run.sh calls it before the benchmarks, and the project's conftest.py before the plugin
loads, so a missing or mismatched torch is one line rather than a collection traceback.
Nothing here is imported by the library: it must work where torch does not.
"""

from __future__ import annotations

import importlib
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


def remedy(platform: str, root: str = "/") -> str:
    """What to install on this board: by JetPack release on a Jetson, by build elsewhere."""
    if platform == "jetson":
        l4t = l4t_release(root)
        jetpack = jetpack_of(l4t) if l4t else None
        if jetpack is None:
            where = "this Jetson (no /etc/nv_tegra_release: which JetPack?)"
        else:
            where = f"JetPack {jetpack} (L4T R{l4t})"
        return (
            f"install NVIDIA's torch wheel for {where} into the system Python, and a torchvision built against "
            f"it (see {NVIDIA_GUIDE}); the jetson env uses the system site packages and never reinstalls torch"
        )
    if platform == "cuda":
        return "recreate the env with a CUDA build of torch (./run.sh cuda after rm -rf .tox/cuda)"
    return "recreate the env: rm -rf .tox/cpu and run ./run.sh again"


def problem(platform: str, root: str = "/", importer: Any = importlib.import_module) -> Optional[str]:
    """None if torch and torchvision import and suit ``platform``; else the one line that says why not."""
    if platform == "auto":
        platform = detect_platform(root)
    board = {"jetson": "on this Jetson", "cuda": "on this GPU machine"}.get(platform, "here")
    try:
        torch = importer("torch")
    except ImportError as exc:
        detail = "" if getattr(exc, "name", None) == "torch" else f" ({str(exc).splitlines()[0]})"
        return f"torch does not import {board}{detail}: {remedy(platform, root)}"
    except Exception as exc:  # noqa: BLE001 - a broken wheel raises OSError (missing libcudart), RuntimeError
        return f"torch fails to import {board} ({str(exc).splitlines()[0]}): {remedy(platform, root)}"
    version = getattr(torch, "__version__", "?")
    cuda_build = getattr(getattr(torch, "version", None), "cuda", None)
    if platform in ("jetson", "cuda") and not cuda_build:
        return f"torch {version} is a CPU-only build {board} (the GPU would go unused): {remedy(platform, root)}"
    try:
        importer("torchvision")
    except ImportError as exc:
        if getattr(exc, "name", None) == "torchvision":
            wanted = torchvision_for(version)
            series = f" {wanted}.x" if wanted else ""
            return f"torchvision is not installed {board}: install torchvision{series}, the series for torch {version}"
        return f"torchvision does not import {board} ({str(exc).splitlines()[0]})"
    except Exception as exc:  # noqa: BLE001 - "operator torchvision::nms does not exist": built for another torch
        wanted = torchvision_for(version)
        series = f"torchvision {wanted}.x" if wanted else "the torchvision built for it"
        return f"torchvision does not match torch {version} ({str(exc).splitlines()[0]}): install {series}"
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
