"""The study's questions answered with one device's numbers, each with the benchmarks it rests on.

A finding is left out when its benchmarks did not run, and says "no difference beyond noise"
when the spread of the rounds cannot tell the configurations apart. Every number is read from
the saved results (medians of the measured rounds and figures in ``extra_info``), never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from bench_support.report.plot_data import benches, curve_bend, latest_with, residency_curves
from bench_support.report.runs import Run, metric
from bench_support.report.summary import describe
from bench_support.report.validity import flag, validity

#: Below this share of the epoch spent waiting for data, training is called compute-bound.
STALL_BOUND = 0.5


@dataclass
class Finding:
    title: str
    text: str
    evidence: List[str]  # benchmark names
    run: str  # the run label the numbers come from
    values: Dict[str, Any] = field(default_factory=dict)
    caveats: List[str] = field(default_factory=list)  # the flagged results it rests on, and why each is flagged


def _benches(run: Run, group: str, **facts: Any) -> List[Dict[str, Any]]:
    return [bench for _, bench in benches({run.device: run}, group, **facts)]


def fastest_loader(run: Run) -> Optional[Finding]:
    """The fastest loader configuration, per image size where the run has several."""
    edge = run.data.get("edge_bench") or {}
    by_size = edge.get("fastest_loader_by_size") or {}
    if not by_size and edge.get("fastest_loader"):
        by_size = {"": edge["fastest_loader"]}
    parts, evidence, values = [], [], {}
    for size, best in by_size.items():
        size_text, _, mode = size.partition(" ")  # "224", or "224 MAXN" under a power-mode sweep
        facts = {"measure": "loader", **({"image_size": int(size_text)} if size_text else {})}
        if mode:
            facts["power_mode"] = mode
        loaders = [b for b in _benches(run, "dataloader", **facts) if metric(b, "samples_per_s")]
        slowest = min(loaders, key=lambda b: metric(b, "samples_per_s")) if loaders else None
        label = f"{size_text} px" + (f" in {mode}" if mode else "")
        text = (f"{label}: " if len(by_size) > 1 else "") + (
            f"{describe(best['config'])}: {best['samples_per_s']:.0f} samples/s (loader only, warm cache)"
        )
        found = {"samples_per_s": best["samples_per_s"], "config": best["config"]}
        if best["tied_within_noise"]:
            ties = len(best["tied_within_noise"])
            text += f"; no difference beyond noise ({best['noise_frac']:.0%}) from {ties} other(s)"
        elif slowest is not None and metric(slowest, "samples_per_s"):
            gain = best["samples_per_s"] / metric(slowest, "samples_per_s") - 1
            found["gain_over_slowest"] = gain
            text += f", {gain:+.0%} over the slowest ({slowest['name']})"
        parts.append(text)
        evidence.append(best["benchmark"])
        values[size] = found
    if not parts:
        return None
    if list(values) == [""]:
        values = values[""]
    return Finding("Fastest DataLoader configuration", "; ".join(parts), evidence, run.label, values)


def cold_cache(run: Run) -> Optional[Finding]:
    """Cold against warm reads of the training files: storage (raw reads) and decoding (the loader)."""
    medians: Dict[tuple, Dict[str, Any]] = {}
    for bench in _benches(run, "pagecache"):
        info = bench.get("extra_info") or {}
        if info.get("reader") in ("raw", "decoded") and info.get("cache_state") in ("cold", "warm"):
            key = (info.get("data_root"), info.get("fs_type"), info["reader"], info["cache_state"])
            medians[key] = {"s": metric(bench, "median"), "name": bench["name"]}
    roots = sorted({(k[0], k[1]) for k in medians})
    parts, evidence, values = [], [], {}
    for root, fs in roots:
        raw_cold, raw_warm = medians.get((root, fs, "raw", "cold")), medians.get((root, fs, "raw", "warm"))
        if not raw_cold or not raw_warm or raw_cold["s"] is None or raw_warm["s"] is None:
            continue
        storage = raw_cold["s"] - raw_warm["s"]
        values[root] = {"raw_cold_s": raw_cold["s"], "raw_warm_s": raw_warm["s"], "storage_s": storage}
        line = (
            f"{root} ({fs}): cold reads take {raw_cold['s']:.3f} s against {raw_warm['s']:.3f} s warm "
            f"(+{storage:.3f} s storage)"
        )
        evidence += [raw_cold["name"], raw_warm["name"]]
        dec_cold, dec_warm = medians.get((root, fs, "decoded", "cold")), medians.get((root, fs, "decoded", "warm"))
        if dec_cold and dec_warm and dec_cold["s"] is not None and dec_warm["s"] is not None:
            decoding = dec_warm["s"] - raw_warm["s"]
            values[root].update(decoded_cold_s=dec_cold["s"], decoded_warm_s=dec_warm["s"], decoding_s=decoding)
            line += (
                f"; through the loader {dec_cold['s']:.3f} s cold, {dec_warm['s']:.3f} s warm, "
                f"of which decoding {decoding:.3f} s"
            )
            evidence += [dec_cold["name"], dec_warm["name"]]
        parts.append(line)
    if not parts:
        return None
    return Finding("Cold page cache: what storage costs", "; ".join(parts), evidence, run.label, values)


def residency_curve(run: Run) -> Optional[Finding]:
    """Raw read time against the measured residency: monotonic or not, and where it bends."""
    parts, evidence, values = [], [], {}
    for key, points in residency_curves({run.device: run}).items():
        where = key[len(run.device) + 1 :]
        falling = all(b[1] <= a[1] for a, b in zip(points, points[1:]))
        line = (
            f"{where}: {points[0][1]:.1f} ms at {points[0][0]:.0%} resident to {points[-1][1]:.1f} ms at "
            f"{points[-1][0]:.0%}, " + ("falling at every step" if falling else "not monotonic")
        )
        bend = curve_bend(points)
        if bend is not None:
            line += (
                f"; it bends at {bend[0]:.0%} resident ({bend[1] / 10:+.1f} ms per 10 points before, "
                f"{bend[2] / 10:+.1f} after)"
            )
        values[where] = {"points": points, "monotonic": falling, "bend": bend}
        parts.append(line)
    if not parts:
        return None
    for bench in _benches(run, "pagecache", reader="raw"):
        if (bench.get("extra_info") or {}).get("resident_frac_before") is not None:
            evidence.append(bench["name"])
    title = "Page-cache residency: the curve between cold and warm"
    return Finding(title, "; ".join(parts), evidence, run.label, values)


def checkpoint_cost(run: Run) -> Optional[Finding]:
    """A durable overwrite of the largest payload on each target, against tmpfs where it ran."""
    chosen: Dict[str, Dict[str, Any]] = {}
    for bench in _benches(run, "checkpoint", write_mode="durable", existing="overwrite"):
        info = bench.get("extra_info") or {}
        target = f"{info.get('target')} ({info.get('fs_type')})"
        if metric(bench, "median") is not None and info.get("ckpt_mb", 0) >= chosen.get(target, {}).get("mb", -1):
            chosen[target] = {"mb": info.get("ckpt_mb", 0), "ms": metric(bench, "median") * 1000, "name": bench["name"]}
    if not chosen:
        return None
    tmpfs = next((v for k, v in chosen.items() if k.endswith("(tmpfs)")), None)
    parts = []
    for target, v in sorted(chosen.items(), key=lambda kv: kv[1]["ms"]):
        part = f"{target}: {v['ms']:.1f} ms for {v['mb']:.1f} MB"
        if tmpfs is not None and v is not tmpfs and tmpfs["ms"] > 0:
            part += f" ({v['ms'] / tmpfs['ms']:.1f}x tmpfs)"
        parts.append(part)
    values = {k: {"ms": v["ms"], "mb": v["mb"]} for k, v in chosen.items()}
    evidence = [v["name"] for v in chosen.values()]
    return Finding("A durable checkpoint on each target", "; ".join(parts), evidence, run.label, values)


def stall_share(run: Run) -> Optional[Finding]:
    rows = [(b["name"], metric(b, "stall_frac")) for b in _benches(run, "training")]
    rows = [(name, frac) for name, frac in rows if frac is not None]
    if not rows:
        return None
    worst = max(rows, key=lambda r: r[1])
    bound = "stall-bound" if worst[1] >= STALL_BOUND else "compute-bound"
    text = (
        f"{bound}: at most {worst[1]:.0%} of an epoch waits for data ({worst[0]}); "
        f"{sum(f < STALL_BOUND for _, f in rows)} of {len(rows)} configurations spend under {STALL_BOUND:.0%}"
    )
    values = {name: frac for name, frac in rows}
    return Finding("Is training compute- or stall-bound?", text, [n for n, _ in rows], run.label, values)


def energy(run: Run) -> Optional[Finding]:
    benches = _benches(run, "training")
    if not benches:
        return None
    measured = [(b["name"], metric(b, "energy_per_sample_mj")) for b in benches]
    measured = [(n, v) for n, v in measured if v is not None]
    if not measured:
        reasons = {(b.get("extra_info") or {}).get("power_unavailable") for b in benches} - {None}
        why = "; ".join(sorted(reasons)) or "no power source"
        return Finding("Energy per sample", f"not measured on this device: {why}", [], run.label, {})
    text = "; ".join(f"{n}: {v:.2f} mJ per sample" for n, v in sorted(measured, key=lambda r: r[1]))
    return Finding("Energy per sample", text, [n for n, _ in measured], run.label, dict(measured))


FINDINGS = (
    ("training", stall_share),
    ("dataloader", fastest_loader),
    ("pagecache", cold_cache),
    ("pagecache", residency_curve),
    ("checkpoint", checkpoint_cost),
    ("training", energy),
)


def findings(history: Dict[str, List[Run]], device: str) -> List[Finding]:
    """Every finding the device's saved runs support, each from its newest run that measured it."""
    out = []
    for group, find in FINDINGS:
        run = latest_with({device: history[device]}, group).get(device)
        result = find(run) if run is not None else None
        if result is not None:
            result.caveats = caveats(run, result.evidence)
            out.append(result)
    return out


def caveats(run: Run, evidence: List[str]) -> List[str]:
    """'name: imprecise (95 % interval of the median ±7.1 % > ...)' for each flagged result a finding rests on."""
    out = []
    by_name = {b["name"]: b for b in run.benchmarks()}
    for name in evidence:
        bench = by_name.get(name)
        if bench is None:
            continue
        v = validity(bench, run.profile)
        why = v["invalid_reasons"] + ([v["precision_reason"]] if v["noisy"] else []) + v["conditions"]
        if v["invalid"] or v["noisy"] or v.get("contended") or v.get("throttled"):
            out.append(f"{name}{flag(v)}: {'; '.join(why)}")
    return out
