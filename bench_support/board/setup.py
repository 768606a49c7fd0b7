"""Opt-in Jetson set-up of the study (MAXN, DVFS off), applied through jtop and undone.

Without ``--jetson-power-mode`` / ``--jetson-clocks`` the suite only records the power
mode and jetson_clocks state (machine facts); it never changes them silently.
"""

from __future__ import annotations

from typing import Any, Callable, Optional


class SetupError(Exception):
    """The requested set-up cannot be applied; the message is one line for the user."""


def jtop_factory(factory: Optional[Callable[[], Any]], needs: str) -> Callable[[], Any]:
    """``factory`` (tests pass a simulated client), else jtop's client class; ``needs`` starts the message."""
    if factory is not None:
        return factory
    try:
        from jtop import jtop
    except ImportError:
        raise SetupError(f"{needs} jetson-stats (jtop), not installed") from None
    return jtop


def apply(mode: Optional[str], clocks: bool, factory: Optional[Callable[[], Any]] = None) -> Callable[[], None]:
    """Apply the set-up now; returns the function that restores the previous state."""
    factory = jtop_factory(factory, "--jetson-power-mode/--jetson-clocks need")
    try:
        client = factory()
        client.start()
        previous_mode = getattr(client.nvpmodel, "name", None)
        previous_clocks = bool(client.jetson_clocks)
        if mode:
            client.nvpmodel = mode
        if clocks:
            client.jetson_clocks = True
    except Exception as exc:  # noqa: BLE001 - JtopException, permissions, unknown mode
        raise SetupError(f"cannot apply the Jetson set-up through jtop: {exc}".splitlines()[0]) from None

    def restore() -> None:
        try:
            if clocks:
                client.jetson_clocks = previous_clocks
            if mode and previous_mode is not None:
                client.nvpmodel = previous_mode
        finally:
            client.close()

    return restore
