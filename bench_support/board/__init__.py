"""What changes the board: opt-in, always undone, kept apart from what measures.

- ``setup``: the study's set-up (``--jetson-power-mode``, ``--jetson-clocks``) applied through jtop,
  with the function that restores the previous state; ``SetupError`` and ``jtop_factory``.
- ``power_modes``: the nvpmodel power-mode sweep (``--jetson-power-modes``): switch modes through
  jtop, wait until the clocks settle, restore the first mode at the end.

This package may read through :mod:`bench_support.measure` (the Jetson facts, sysfs); nothing in
``measure`` imports it.
"""
