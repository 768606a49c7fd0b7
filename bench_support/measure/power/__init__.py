"""The power instruments: what reads a power sensor, and what turns its samples into energy.

Nothing here changes the board (power modes and clocks are set in :mod:`bench_support.board`);
nothing outside this package reads a power sensor.

- ``errors``: what every source promises: :class:`SourceUnavailable` and how long a reading
  stays fresh (``stale_after_s``).
- ``live``: the sources fed from beside the benchmark, fresh or fail: a ``tegrastats``
  process and the jtop client (``TegrastatsSource``, ``JtopSource``, ``parse_tegrastats``).
- ``sources``: where power comes from (RAPL, INA3221 hwmon, NVML, and the two live ones) and
  ``open_source``, which picks one for ``--power-backend`` (``BACKENDS``, ``AUTO_ORDER``).
- ``session``: samples a source on a thread and integrates energy over a window
  (``PowerSession``, ``PowerWindow``, ``energy_per_sample_mj``, ``DEFAULT_INTERVAL_S``).

The names below are the package's public face; the modules hold the rest (patch a module's own
name, e.g. ``sources.AUTO_ORDER``, never a re-export here).
"""

from bench_support.measure.power.errors import SourceUnavailable
from bench_support.measure.power.session import (
    DEFAULT_INTERVAL_S,
    PowerSession,
    PowerWindow,
    energy_per_sample_mj,
)
from bench_support.measure.power.sources import BACKENDS, open_source

__all__ = [
    "BACKENDS",
    "DEFAULT_INTERVAL_S",
    "PowerSession",
    "PowerWindow",
    "SourceUnavailable",
    "energy_per_sample_mj",
    "open_source",
]
