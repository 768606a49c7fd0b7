"""The study's questions answered with one device's numbers, each with the benchmarks it rests on.

A finding is left out when its benchmarks did not run, and says "no difference beyond noise"
when the spread of the rounds cannot tell the configurations apart. Every number is read from
the saved results (medians of the measured rounds and figures in ``extra_info``), never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from bench_support.intervals import BetweenTrials, Effect, between_trials, effect, proportion_interval, typical_trial
from bench_support.report.plot_data import benches, curve_bend, latest_with, residency_curves
from bench_support.report.precision import precision_text, precision_values, run_precision
from bench_support.report.runs import Run, metric
from bench_support.report.summary import describe, fastest_loaders, gain_text, trials_of
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
    """The fastest loader configuration, per image size where the run has several: faster than the runner-up
    with an interval that excludes a tie, or the tie named."""
    by_size = fastest_loaders(run.benchmarks())
    parts, evidence, values = [], [], {}
    for size, best in by_size.items():
        size_text, _, mode = size.partition(" ")  # "224", or "224 MAXN" under a power-mode sweep
        label = f"{size_text} px" + (f" in {mode}" if mode else "")
        prefix = f"{label}: " if len(by_size) > 1 else ""
        rate = f"{best['samples_per_s']:.0f} samples/s"
        found = {"samples_per_s": best["samples_per_s"], "config": best["config"]}
        if best["tied"]:
            ties = "; ".join(describe(t) for t in best["tied"])
            text = f"{prefix}no clear winner: {describe(best['config'])} ({rate}) and {ties}"
            found["tied_with"] = [t["benchmark"] for t in best["tied"]]
            evidence += [t["benchmark"] for t in best["tied"]]
        else:
            text = f"{prefix}{describe(best['config'])}: {rate} (loader only, warm cache)"
        for role in ("runner_up", "slowest"):
            other = best.get(role)
            if other is not None and other["gain"] is not None:
                found[f"gain_over_{role}"] = other["gain"]
                found[f"gain_over_{role}_interval"] = [other["gain_low"], other["gain_high"]]
                found[f"gain_over_{role}_rerun"] = [other["gain_rerun_low"], other["gain_rerun_high"]]
        runner, slowest = best.get("runner_up"), best.get("slowest")
        if runner is not None and not best["tied"]:
            text += f", {gain_text(runner)} over the runner-up ({runner['benchmark']})"
        if slowest is not None and slowest is not runner:
            text += f", {gain_text(slowest)} over the slowest ({slowest['benchmark']})"
        parts.append(text)
        evidence.append(best["benchmark"])
        values[size] = found
    if not parts:
        return None
    if list(values) == [next(iter(by_size))] and len(values) == 1:
        values = next(iter(values.values()))
    return Finding("Fastest DataLoader configuration", "; ".join(parts), evidence, run.label, values)


def typical_s(bench: Dict[str, Any]) -> float:
    """A result's typical trial (seconds): the time its effects are ratios of (:func:`intervals.typical_trial`), so
    that the times a finding prints agree with its ratios. With one trial, its median."""
    return typical_trial(trials_of(bench))


def ratio(slower: Dict[str, Any], faster: Dict[str, Any], between: Optional[BetweenTrials] = None) -> Optional[Effect]:
    """The first result's typical trial over the second's, with its interval (trials and rounds bootstrapped, and
    at least as wide as the process-to-process spread ``between`` allows)."""
    return effect(trials_of(slower), trials_of(faster), between=between)


def _between(run: Run, group: str) -> Optional[BetweenTrials]:
    """The process-to-process spread of the run's ``group``, pooled over its benchmarks."""
    return between_trials(trials_of(bench) for bench in _benches(run, group))


def ratio_text(found: Optional[Effect], against: str) -> str:
    """'8.30x warm, 95 % interval 7.90-8.80x, a re-run 7.75-8.96x', or 'no clear difference from warm (0.97-1.05x,
    a re-run 0.96-1.07x)'."""
    if found is None:
        return f"no interval against {against} (too few rounds)"
    interval = f"{found.low:.2f}-{found.high:.2f}x"
    rerun = "a re-run {:.2f}-{:.2f}x".format(*found.rerun)
    if not found.clear:
        return f"no clear difference from {against} ({interval}, {rerun})"
    return f"{found.ratio:.2f}x {against}, 95 % interval {interval}, {rerun}"


def _effect_values(found: Optional[Effect]) -> Dict[str, Any]:
    if found is None:
        return {"ratio": None}
    low, high = found.rerun
    return {"ratio": found.ratio, "ratio_low": found.low, "ratio_high": found.high, "clear": found.clear,
            "rerun_low": low, "rerun_high": high}  # fmt: skip


def cold_cache(run: Run) -> Optional[Finding]:
    """Cold against warm reads of the training files: storage (raw reads) and decoding (the loader)."""
    found: Dict[tuple, Dict[str, Any]] = {}
    for bench in _benches(run, "pagecache"):
        info = bench.get("extra_info") or {}
        if info.get("reader") in ("raw", "decoded") and info.get("cache_state") in ("cold", "warm"):
            if metric(bench, "median") is not None:
                found[(info.get("data_root"), info.get("fs_type"), info["reader"], info["cache_state"])] = bench
    roots = sorted({(k[0], k[1]) for k in found})
    between = _between(run, "pagecache")
    parts, evidence, values = [], [], {}
    for root, fs in roots:
        raw_cold, raw_warm = found.get((root, fs, "raw", "cold")), found.get((root, fs, "raw", "warm"))
        if not raw_cold or not raw_warm:
            continue
        cold_s, warm_s = typical_s(raw_cold), typical_s(raw_warm)
        raw_effect = ratio(raw_cold, raw_warm, between)
        values[root] = {"raw_cold_s": cold_s, "raw_warm_s": warm_s, "storage_s": cold_s - warm_s,
                        "cold_over_warm": _effect_values(raw_effect)}  # fmt: skip
        line = (
            f"{root} ({fs}): cold reads take {cold_s:.3f} s against {warm_s:.3f} s warm "
            f"(+{cold_s - warm_s:.3f} s storage; {ratio_text(raw_effect, 'warm')})"
        )
        evidence += [raw_cold["name"], raw_warm["name"]]
        dec_cold, dec_warm = found.get((root, fs, "decoded", "cold")), found.get((root, fs, "decoded", "warm"))
        if dec_cold and dec_warm:
            dc, dw = typical_s(dec_cold), typical_s(dec_warm)
            decoded_effect = ratio(dec_cold, dec_warm, between)
            values[root].update(decoded_cold_s=dc, decoded_warm_s=dw, decoding_s=dw - warm_s,
                                decoded_cold_over_warm=_effect_values(decoded_effect))  # fmt: skip
            line += (
                f"; through the loader {dc:.3f} s cold, {dw:.3f} s warm ({ratio_text(decoded_effect, 'warm')}), "
                f"of which decoding {dw - warm_s:.3f} s"
            )
            evidence += [dec_cold["name"], dec_warm["name"]]
        parts.append(line)
    if not parts:
        return None
    return Finding("Cold page cache: what storage costs", "; ".join(parts), evidence, run.label, values)


def residency_curve(run: Run) -> Optional[Finding]:
    """Raw read time against the measured residency: monotonic or not, and where it bends."""
    parts, evidence, values = [], [], {}
    raw = [b for b in _benches(run, "pagecache", reader="raw") if metric(b, "median") is not None]
    between = _between(run, "pagecache")
    for key, points in residency_curves({run.device: run}).items():
        where = key[len(run.device) + 1 :]
        steps = _steps(points, raw, where, between)
        falling = all(step == "falls" for step in steps)
        rises, flat = steps.count("rises"), steps.count("flat")
        shape = (
            "falling at every step"
            if falling
            else f"rising at {rises} step(s) (not monotonic)"
            if rises
            else f"never rising ({flat} step(s) with no clear difference)"
        )
        line = (
            f"{where}: {points[0][1]:.1f} ms at {points[0][0]:.0%} resident to {points[-1][1]:.1f} ms at "
            f"{points[-1][0]:.0%}, {shape}"
        )
        bend = curve_bend(points)
        if bend is not None:
            line += (
                f"; it bends at {bend[0]:.0%} resident ({bend[1] / 10:+.1f} ms per 10 points before, "
                f"{bend[2] / 10:+.1f} after)"
            )
        values[where] = {"points": points, "monotonic": not rises, "steps": steps, "bend": bend}
        parts.append(line)
    if not parts:
        return None
    for bench in _benches(run, "pagecache", reader="raw"):
        if (bench.get("extra_info") or {}).get("resident_frac_before") is not None:
            evidence.append(bench["name"])
    title = "Page-cache residency: the curve between cold and warm"
    return Finding(title, "; ".join(parts), evidence, run.label, values)


def _steps(points, raw: List[Dict[str, Any]], where: str, between: Optional[BetweenTrials] = None) -> List[str]:
    """Each step of a residency curve: 'falls' or 'rises' where the effect between its two reads is clear, else
    'flat'. A point is matched to its result by its measured residency and the curve's data root."""
    by_frac = {}
    for bench in raw:
        info = bench.get("extra_info") or {}
        if where.startswith(f"{info.get('data_root')} ({info.get('fs_type')})"):
            by_frac[(info.get("resident_frac_before"), metric(bench, "median") * 1000)] = bench
    out = []
    for a, b in zip(points, points[1:]):
        first, second = by_frac.get(a), by_frac.get(b)
        found = ratio(second, first, between) if first is not None and second is not None else None
        if found is None:
            out.append("falls" if b[1] <= a[1] else "rises")  # no rounds to judge by: the medians
        else:
            out.append("flat" if not found.clear else "falls" if found.ratio < 1 else "rises")
    return out


def checkpoint_cost(run: Run) -> Optional[Finding]:
    """A durable overwrite of the largest payload on each target, against tmpfs where it ran."""
    chosen: Dict[str, Dict[str, Any]] = {}
    for bench in _benches(run, "checkpoint", write_mode="durable", existing="overwrite"):
        info = bench.get("extra_info") or {}
        target = f"{info.get('target')} ({info.get('fs_type')})"
        if metric(bench, "median") is not None and info.get("ckpt_mb", 0) >= chosen.get(target, {}).get("mb", -1):
            chosen[target] = {"mb": info.get("ckpt_mb", 0), "ms": typical_s(bench) * 1000, "bench": bench}
    if not chosen:
        return None
    tmpfs = next((v for k, v in chosen.items() if k.endswith("(tmpfs)")), None)
    between = _between(run, "checkpoint")
    parts, values = [], {}
    for target, v in sorted(chosen.items(), key=lambda kv: kv[1]["ms"]):
        part = f"{target}: {v['ms']:.1f} ms for {v['mb']:.1f} MB"
        values[target] = {"ms": v["ms"], "mb": v["mb"]}
        if tmpfs is not None and v is not tmpfs:
            found = ratio(v["bench"], tmpfs["bench"], between)
            part += f" ({ratio_text(found, 'tmpfs')})"
            values[target]["over_tmpfs"] = _effect_values(found)
        parts.append(part)
    evidence = [v["bench"]["name"] for v in chosen.values()]
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


def continual(run: Run) -> Optional[Finding]:
    """What learning on the device bought and cost, per fine-tune configuration: held-out accuracy with its interval
    (Wilson, over the held-out photos), the lift over the model as it came, forgetting, and memory against the
    budget; the best configuration named only when its interval clears the runner-up's."""
    block = (run.data.get("edge_bench") or {}).get("continual") or {}
    configs = [
        c for c in block.get("configs") or [] if isinstance(c, dict) and isinstance(c.get("final_acc"), (int, float))
    ]
    held_out = ((block.get("photos") or {}).get("held_out_photos")) if isinstance(block.get("photos"), dict) else None
    if not configs:
        return None
    source = (block.get("photos") or {}).get("source", "?") if isinstance(block.get("photos"), dict) else "?"
    parts, values = [], {}
    for c in sorted(configs, key=lambda c: -c["final_acc"]):
        found = proportion_interval(round(c["final_acc"] * held_out), held_out) if isinstance(held_out, int) else None
        text = f"{c['config']}: held-out accuracy {c['final_acc']:.3f}"
        if found is not None:
            text += f" of {held_out} {source} photos (95 % interval {found[0]:.2f}-{found[1]:.2f})"
        if isinstance(c.get("pretrained_acc"), (int, float)) and isinstance(c.get("lift"), (int, float)):
            text += f", {c['lift']:+.3f} over the model as it came ({c['pretrained_acc']:.3f})"
        if isinstance(c.get("forgetting"), (int, float)):
            text += f", forgetting {100 * c['forgetting']:+.1f} points"
        if isinstance(c.get("mem_peak_abs_mb"), (int, float)):
            text += f", peak {c['mem_peak_abs_mb']:.0f} MB"
            if c.get("within_budget") is not None and isinstance(c.get("rss_budget_mb"), (int, float)):
                text += f" ({'within' if c['within_budget'] else 'OVER'} the {c['rss_budget_mb']:g} MB budget)"
        parts.append(text)
        values[c["config"]] = {**{k: c.get(k) for k in ("final_acc", "lift", "forgetting", "mem_peak_abs_mb",
                                                          "within_budget")}, "acc_interval": found}  # fmt: skip
    ranked = sorted(configs, key=lambda c: -c["final_acc"])
    if len(ranked) > 1 and isinstance(held_out, int):
        best, runner = values[ranked[0]["config"]]["acc_interval"], values[ranked[1]["config"]]["acc_interval"]
        if best is not None and runner is not None and best[0] > runner[1]:
            verdict = f"{ranked[0]['config']} learns best, beyond the runner-up's interval"
        else:
            verdict = (f"no clear difference in accuracy between {ranked[0]['config']} and {ranked[1]['config']} "
                       f"on {held_out} held-out photos")  # fmt: skip
        parts.insert(0, verdict)
    evidence = [b["name"] for b in _benches(run, "continual")]
    return Finding("Learning on the device (continual)", "; ".join(parts), evidence, run.label, values)


FINDINGS = (
    ("training", stall_share),
    ("dataloader", fastest_loader),
    ("pagecache", cold_cache),
    ("pagecache", residency_curve),
    ("checkpoint", checkpoint_cost),
    ("training", energy),
    ("continual", continual),
)


def run_precision_finding(run: Run) -> Optional[Finding]:
    """The newest run's precision as a whole, where results missed their target: how many, the spread between trials
    per module and the trials that spread would take (:mod:`bench_support.report.precision`)."""
    found = run_precision(run.benchmarks(), run.profile)
    if found is None or not found.imprecise:  # every result met its target: each says so in its own row
        return None
    return Finding("Precision of this run", precision_text(found), [], run.label, precision_values(found))


def findings(history: Dict[str, List[Run]], device: str) -> List[Finding]:
    """Every finding the device's saved runs support, each from its newest run that measured it; then the newest
    run's precision."""
    out = []
    for group, find in FINDINGS:
        run = latest_with({device: history[device]}, group).get(device)
        result = find(run) if run is not None else None
        if result is not None:
            result.caveats = caveats(run, result.evidence)
            out.append(result)
    found = run_precision_finding(history[device][-1]) if history.get(device) else None
    return out + ([found] if found is not None else [])


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
