"""The two kinds of failure every part of the suite raises, and what the pytest face makes of them.

- :class:`Unavailable`: this machine cannot measure the thing asked for (no tmpfs, no
  eviction method, residency unknowable as this user, no CUDA device). The benchmark is
  skipped with the message as its reason: a missing figure is never invented.
- :class:`UserError`: the input is wrong or the environment refuses (an unwritable
  directory, a damaged dataset, a worker that died). The test fails with the message as
  one line, no traceback.

Library code raises them; only ``bench_support.plugin`` turns them into skips and failures.
"""

from __future__ import annotations


class Unavailable(Exception):
    """Cannot be measured here; the message says why (one line)."""


class UserError(Exception):
    """Bad input or a refusing environment; the message is one line for the user."""
