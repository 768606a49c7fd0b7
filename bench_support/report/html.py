"""``results/report.html``: one self-contained page per results folder.

Everything is inline — the style sheet, and every plot and timeline as a ``data:`` PNG — so
the file opens from disk on a device without a network and fetches nothing. Per device:
the findings with the benchmarks they rest on, the flagged results and why, the run history,
the machine facts; then the devices side by side and every plot.
"""

from __future__ import annotations

import base64
import html
import os
import time
from typing import Dict, List, Sequence

from bench_support.files import write_atomic
from bench_support.report.findings import findings
from bench_support.report.runs import Run
from bench_support.report.validity import validity

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.5em; } table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .muted { color: #666; } .finding { margin: .6em 0; }
.finding b { display: block; } details { margin: .2em 0 .8em; color: #555; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; } code { background: #f5f5f5; padding: 0 .2em; }
.flag { color: #a40; font-weight: 600; }
"""

FACTS = (
    ("board", ("board",)),
    ("platform", ("platform",)),
    ("CPU", ("cpu", "model")),
    ("usable cores", ("cpu", "usable_cores")),
    ("memory (MB)", ("memory", "total_mb")),
    ("torch", ("torch", "version")),
    ("torch build", ("torch", "build")),
    ("power source", ("power", "source")),
    ("L4T", ("jetson", "l4t")),
    ("power mode", ("jetson", "power_mode")),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _png(path: str) -> str:
    with open(path, "rb") as fh:
        data = base64.b64encode(fh.read()).decode("ascii")
    return f'<img alt="{_e(os.path.basename(path))}" src="data:image/png;base64,{data}">'


def _fact(facts: Dict, keys: Sequence[str]) -> object:
    node: object = facts
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _device(device: str, runs: List[Run], timelines: Sequence[str]) -> List[str]:
    latest = runs[-1]
    what = f"{latest.label} ({latest.profile or '?'} profile{', partial run' if latest.partial else ''})"
    out = [
        f'<h2 id="{_e(device)}">{_e(device)}</h2>',
        f'<p class="muted">latest run {_e(what)}</p>',
        "<h3>Findings</h3>",
    ]
    found = findings({device: runs}, device)
    for finding in found:
        out.append(f'<div class="finding"><b>{_e(finding.title)}</b>{_e(finding.text)}')
        if finding.caveats:
            out.append(
                f'<p class="flag">Rests on {len(finding.caveats)} flagged result(s): '
                + "; ".join(_e(c) for c in finding.caveats)
                + "</p>"
            )
        if finding.evidence:
            names = ", ".join(f"<code>{_e(n)}</code>" for n in finding.evidence)
            out.append(f"<details><summary>from run {_e(finding.run)}</summary>{names}</details>")
        out.append("</div>")
    if not found:
        out.append("<p>No finding: the saved runs hold none of the benchmarks the findings rest on.</p>")
    flagged = []
    for bench in latest.benchmarks():
        v = validity(bench, latest.profile)
        flags = (("invalid", v["invalid"]), ("imprecise", v["noisy"]), ("contended", v.get("contended")),
                 ("throttled", v.get("throttled")))  # fmt: skip
        marks = [m for m, on in flags if on]
        if marks:
            imprecise = [v["precision_reason"]] if v["noisy"] and v.get("precision_reason") else []
            why = "; ".join(v["invalid_reasons"] + imprecise + v["conditions"])
            flagged.append(f'<tr><td><code>{_e(bench["name"])}</code></td><td class="flag">{_e(", ".join(marks))}</td>'
                           f"<td>{_e(why)}</td></tr>")  # fmt: skip
    out.append(f"<h3>Flagged results of {_e(latest.label)}</h3>")
    if flagged:
        out.append(
            "<table><tr><th>benchmark</th><th>flag</th><th>measured reason</th></tr>" + "".join(flagged) + "</table>"
        )
    else:
        out.append("<p>None: every result is steady, valid and uncontended by its own rules.</p>")
    out.append("<h3>Runs</h3><table><tr><th>run</th><th>profile</th><th>benchmarks</th><th>notes</th></tr>")
    for run in reversed(runs):
        block = run.data.get("edge_bench") or {}
        notes = ", ".join(n for n, on in (("partial", run.partial), ("interrupted", block.get("interrupted"))) if on)
        out.append(f"<tr><td>{_e(run.label)}</td><td>{_e(run.profile or '?')}</td>"
                   f"<td>{len(run.benchmarks())}</td><td>{_e(notes)}</td></tr>")  # fmt: skip
    out.append("</table><h3>Machine</h3><table>")
    for label, keys in FACTS:
        value = _fact(latest.facts, keys)
        if value is not None:
            out.append(f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>")
    out.append("</table>")
    if timelines:
        out.append(f"<h3>Timelines of {_e(latest.label)}</h3>")
        out.extend(_png(path) for path in timelines)
    return out


def write_html(
    history: Dict[str, List[Run]], path: str, plots: Sequence[str], timelines: Dict[str, List[str]], side: List[str]
) -> str:
    """The page, written whole (temp file + rename); returns its path."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    body = [f'<h1>edge-bench report</h1><p class="muted">written {_e(stamp)} from {_e(os.path.dirname(path))}']
    body.append(" — devices: " + ", ".join(f'<a href="#{_e(d)}">{_e(d)}</a>' for d in sorted(history)) + "</p>")
    for device in sorted(history):
        body.extend(_device(device, history[device], timelines.get(device, [])))
    if len(history) >= 2:
        body.append("<h2>Devices side by side</h2><pre>" + _e("\n".join(side)) + "</pre>")
    if plots:
        body.append("<h2>Plots</h2>")
        body.extend(_png(p) for p in plots if os.path.exists(p))
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>edge-bench report</title>'
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as fh:  # undecodable path bytes, escaped
            fh.write(page)

    write_atomic(path, write, suffix=".html")
    return path
