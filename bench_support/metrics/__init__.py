"""The extra_info vocabulary: every figure a result carries, its unit, family and direction.

The one source for the docs/metrics.md metric table (``python -m bench_support.metrics``
prints it), the report's key figures, its plots and the regression gate. Names are a
public interface: users script against them and comparisons match on them. MB means
2**20 bytes. A figure that could not be measured is ``null`` with a sibling
``<family>_unavailable`` saying why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

MB = float(1 << 20)

LOWER, HIGHER = "lower", "higher"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # s, ms, MB, MB/s, samples/s, J, mJ, W, fraction, %, count, text, flag, list, record
    family: str
    better: Optional[str]  # LOWER, HIGHER, or None: a fact about the run, not a score
    meaning: str
    key_in: Tuple[str, ...] = ()  # benchmark groups whose tables and plots lead with it
    timed: bool = False  # derived from elapsed time: the gate's noise band comes from the rounds' spread


from bench_support.metrics.how import HOW  # noqa: E402
from bench_support.metrics.vocabulary import VOCABULARY  # noqa: E402

METRICS: Dict[str, Metric] = {m.name: m for m in VOCABULARY}

#: Figures whose name carries a label chosen at run time (a checkpoint target's filesystem).
PATTERNS: Tuple[Tuple[str, Metric], ...] = (
    (r"[a-z0-9.-]+_ms", Metric("<target>_ms", "ms", "continual", LOWER, "durable checkpoint write per target")),
    (r"[a-z0-9.-]+_unavailable", Metric("<target>_unavailable", "text", "continual", None, "why a target failed")),
)


def get(name: str) -> Optional[Metric]:
    """The vocabulary entry of ``name`` (patterns included), or None for an unknown name."""
    if name in METRICS:
        return METRICS[name]
    for pattern, metric in PATTERNS:
        if re.fullmatch(pattern, name):
            return metric
    return None


def key_figures(group: str) -> Tuple[str, ...]:
    """The figures a group's tables and plots lead with (declaration order)."""
    return tuple(m.name for m in METRICS.values() if group in m.key_in)


def is_timed(name: str) -> bool:
    metric = get(name)
    return bool(metric and metric.timed)


def markdown_table() -> str:
    """The docs/metrics.md metric table, one row per figure, in families."""
    lines = ["| name | unit | family | better | meaning | how measured |", "|---|---|---|---|---|---|"]
    for m in list(METRICS.values()) + [metric for _, metric in PATTERNS]:
        how = HOW.get(m.name, "")
        lines.append(f"| `{m.name}` | {m.unit} | {m.family} | {m.better or ''} | {m.meaning} | {how} |")
    return "\n".join(lines)


BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"


def readme_with_table(text: str) -> str:
    """``text`` with the part between the metric markers replaced by :func:`markdown_table`."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}"
