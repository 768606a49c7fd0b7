"""Power and energy of the measured rounds.

No backend measures power yet (jetson-stats, INA3221, RAPL and NVML arrive with the
power issue), so every figure of the power family is ``None`` and
``power_unavailable`` says why — never 0, never an estimate.
"""

from __future__ import annotations

from typing import Dict, Optional

POWER_KEYS = ("energy_j", "energy_net_j", "power_avg_w", "power_idle_w", "power_source", "power_samples")

NOT_IMPLEMENTED = "no power backend in this version of the suite (jtop, INA3221, RAPL, NVML are planned)"


def unavailable(reason: str) -> Dict[str, Optional[object]]:
    figures: Dict[str, Optional[object]] = {key: None for key in POWER_KEYS}
    figures["power_unavailable"] = reason
    return figures


class PowerWindow:
    """Brackets the measured rounds; ``figures`` holds the power family afterwards."""

    def __init__(self) -> None:
        self.figures: Dict[str, Optional[object]] = {}

    def __enter__(self) -> PowerWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.figures = unavailable(NOT_IMPLEMENTED)


def energy_per_sample_mj(energy_j: Optional[float], samples: int) -> Optional[float]:
    """mJ per training sample, or None when energy was not measured."""
    if energy_j is None or samples <= 0:
        return None
    return energy_j * 1000.0 / samples
