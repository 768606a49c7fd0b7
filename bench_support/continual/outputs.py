"""What the continual-learning scenario leaves for a person: epoch and summary lines, CSV, plots, log.

A run's outputs go to one folder (``results/<device>/continual/<run>/``):
``results.csv`` (one row per configuration and epoch, epoch 0 the pretrained model; the vocabulary's
per-epoch columns first),
``log.txt`` (the epoch lines as printed) and five PNG plots under ``plots/``. Every
number in them is read from the same per-epoch rows that the saved pytest-benchmark
JSON holds in each benchmark's ``extra_info["epochs"]``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

PLOTS = (
    ("accuracy_vs_epoch.png", "accuracy"),
    ("mem_peak_vs_epoch.png", "mem_peak_abs_mb"),
    ("mem_now_vs_epoch.png", "mem_now_mb"),
    ("mem_delta_vs_epoch.png", "mem_delta_mb"),
    ("ckpt_latency_vs_epoch.png", "ckpt"),
)


@dataclass(frozen=True)
class Outcome:
    """What a finished scenario leaves for the run's JSON and the terminal summary."""

    outputs: Optional[Dict[str, Any]]  # directory, csv, log, plots; or {"error": ...}; None when nothing ran
    configs: List[Dict[str, Any]]  # the summary figures of each configuration that ran
    photos: Optional[Dict[str, Any]]
    pretraining: Optional[Dict[str, Any]]
    notes: List[str]
    summaries: List[str]  # one line per configuration

    def json_block(self) -> Optional[Dict[str, Any]]:
        """The run's ``edge_bench.continual``: None when no configuration ran."""
        if not self.configs:
            return None
        return {
            "outputs": self.outputs,
            "configs": self.configs,
            "photos": self.photos,
            "pretraining": self.pretraining,
            "notes": self.notes,
        }

    def terminal_lines(self) -> List[str]:
        """The end-of-run lines (without the suite's prefix); none when no configuration ran."""
        if not self.summaries:
            return []
        lines = list(self.summaries) + list(self.notes)
        out = self.outputs or {}
        if out.get("error"):
            lines.append(out["error"])
        elif out:
            lines.append(f"continual-learning results: {out['csv']}, {out['log']}")
            if out.get("plots"):
                names = ", ".join(os.path.basename(p) for p in out["plots"])
                lines.append(f"continual-learning plots in {os.path.dirname(out['plots'][0])}: {names}")
        return lines


def _num(value: Optional[float], fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def epoch_line(row: Dict[str, Any], targets: Sequence[str]) -> str:
    """``epoch N: acc=… time=…s peak=…MB delta=…MB now=…MB ext4=…ms tmpfs=…ms`` (+ synthetic)."""
    parts = [
        f"epoch {row['epoch']}: acc={_num(row['acc'], '.3f')}",
        f"time={_num(row['time_s'], '.2f', 's')}",
        f"peak={_num(row['mem_peak_abs_mb'], '.1f', 'MB')}",
        f"delta={_num(row['mem_delta_mb'], '.1f', 'MB')}",
        f"now={_num(row['mem_now_mb'], '.1f', 'MB')}",
    ]
    for label in targets:
        ckpt = row.get("ckpt", {}).get(label) or {}
        parts.append(f"{label}={_num(ckpt.get('ms'), '.1f', 'ms')}" if "error" not in ckpt else f"{label}=failed")
    if row.get("synth_acc") is not None:
        parts.append(f"synth_acc={row['synth_acc']:.3f}")
    for part in ("known", "new"):
        if row.get(f"acc_{part}") is not None:
            parts.append(f"{part}={row[f'acc_{part}']:.3f}")
    if row.get("acc_ncm") is not None:
        parts.append(f"ncm={row['acc_ncm']:.3f}")
    return " ".join(parts)


def summary_line(result: Dict[str, Any]) -> str:
    """A configuration's end-of-run line: accuracy, time, memory, the budget's verdict."""
    r = result
    parts = [(part, r.get(f"final_acc_{part}")) for part in ("known", "new")]
    split = ", ".join(f"{part} {value:.3f}" for part, value in parts if value is not None)
    line = (
        f"continual {r['config']}: held-out acc {r['final_acc']:.3f} ({split}; {r['photos']['source']} photos), "
        f"pretrained {r['pretrained_acc']:.3f} (lift {r['lift']:+.3f}), "
        + (f"nearest mean {r['final_acc_ncm']:.3f}, " if r.get("final_acc_ncm") is not None else "")
        + (f"forgetting {100 * r['forgetting']:+.1f} points, " if r.get("forgetting") is not None else "")
        + f"{len(r['epochs'])} epochs in {r['finetune_s']:.1f} s, peak {r['mem_peak_abs_mb']:.0f} MB "
        f"(imports {r['mem_import_mb']:.0f}, training delta {r['mem_delta_mb']:.0f}), now {r['mem_now_mb']:.0f} MB"
    )
    if result["within_budget"] is not None:
        verdict = "within" if result["within_budget"] else "over"
        line += f" — {verdict} the {result['rss_budget_mb']:g} MB budget"
    return line


def csv_columns(targets: Sequence[str], classes: Sequence[str] = ()) -> List[str]:
    return (
        ["config", "finetune", "optimizer", "epoch", "acc", "time_s", "mem_peak_abs_mb", "mem_delta_mb", "mem_now_mb"]
        + [f"{label}_ms" for label in targets]
        + ["synth_acc", "acc_known", "acc_new", "acc_ncm", "acc_ncm_known", "acc_ncm_new"]
        + [class_column(c) for c in classes]
        + ["loss", "fetch_stall_s", "mem_hwm_mb", "ckpt_mb", "within_budget", "photos"]
    )


def class_column(label: str) -> str:
    """A class's accuracy column: ``acc_class_<class>``, a prefix no other column has, so a class named
    ``ncm_known`` cannot overwrite the nearest mean's ``acc_ncm_known``."""
    return f"acc_class_{label}"


def held_out_classes(results: Sequence[Dict[str, Any]]) -> List[str]:
    """Every class with held-out photos, in the order the per-class figures name them."""
    return sorted({c for r in results for c in (r.get("final_acc_per_class") or {})})


def csv_rows(results: Sequence[Dict[str, Any]], targets: Sequence[str]) -> List[Dict[str, Any]]:
    rows = []
    for result in results:
        # Epoch 0: the pretrained model before fine-tuning, as the log shows it (nothing trained, nothing timed).
        before = result.get("before") or {}
        rows.append({
            "config": result["config"], "finetune": result["finetune"], "optimizer": result["optimizer"],
            "epoch": 0, "acc": before.get("acc"), "synth_acc": before.get("synth_acc"),
            "acc_ncm": before.get("acc_ncm"),
            "within_budget": result.get("within_budget"), "photos": result["photos"]["source"],
            **{class_column(c): v for c, v in (before.get("acc_per_class") or {}).items()},
        })  # fmt: skip
        for row in result["epochs"]:
            out = {key: row.get(key) for key in csv_columns(targets) if key in row}
            out.update({class_column(c): v for c, v in (row.get("acc_per_class") or {}).items()})
            out.update(
                config=result["config"],
                finetune=result["finetune"],
                optimizer=result["optimizer"],
                within_budget=result.get("within_budget"),
                photos=result["photos"]["source"],
            )
            sizes = []
            for label in targets:
                ckpt = row.get("ckpt", {}).get(label) or {}
                out[f"{label}_ms"] = ckpt.get("ms")
                if ckpt.get("mb") is not None:
                    sizes.append(ckpt["mb"])
            out["ckpt_mb"] = sizes[0] if sizes else None
            rows.append(out)
    return rows


def write_csv(results: Sequence[Dict[str, Any]], targets: Sequence[str], path: str) -> int:
    rows = csv_rows(results, targets)
    with open(path, "w", newline="", encoding="utf-8") as fh:  # class names may be any script
        writer = csv.DictWriter(fh, fieldnames=csv_columns(targets, held_out_classes(results)))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return len(rows)


def write_plots(results: Sequence[Dict[str, Any]], targets: Sequence[str], directory: str, budget_mb=None):
    """The five plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    os.makedirs(directory, exist_ok=True)
    paths = []
    source = results[0]["photos"]["source"] if results else "?"
    for name, key in PLOTS:
        if key == "accuracy":  # beside the curves, what was learnt: each class before and after
            fig, (ax, per_class) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1.2]})
            _per_class_bars(per_class, results)
        else:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        for index, result in enumerate(results):
            colour, marker = f"C{index}", "osD^v<>p"[index % 7]  # a marker per configuration: overlaps stay visible
            rows = result["epochs"]
            epochs = [r["epoch"] for r in rows]
            if key == "accuracy":
                before = result.get("before", {})
                ax.plot(
                    [0] + epochs,
                    [before.get("acc")] + [r["acc"] for r in rows],
                    marker + "-",
                    color=colour,
                    label=f"{result['config']} held-out photos",
                )
                if before.get("acc_ncm") is not None:
                    ax.plot(
                        [0] + epochs,
                        [before["acc_ncm"]] + [r.get("acc_ncm") for r in rows],
                        marker + ":",
                        color=colour,
                        alpha=0.8,
                        label=f"{result['config']} held-out, nearest mean",
                    )
                if before.get("synth_acc") is not None:
                    ax.plot(
                        [0] + epochs,
                        [before["synth_acc"]] + [r["synth_acc"] for r in rows],
                        "s--",
                        color=colour,
                        alpha=0.6,
                        label=f"{result['config']} synthetic val",
                    )
            elif key == "ckpt":
                for style, label in zip(("o-", "s--", "^:", "d-."), targets):
                    values = [(r.get("ckpt", {}).get(label) or {}).get("ms") for r in rows]
                    ax.plot(epochs, [float("nan") if v is None else v for v in values], style, color=colour,
                            label=f"{result['config']} {label}")  # fmt: skip
            else:
                ax.plot(epochs, [r[key] for r in rows], marker + "-", color=colour, label=result["config"])
        if key == "mem_peak_abs_mb" and budget_mb:
            ax.axhline(budget_mb, color="red", linestyle=":", label=f"budget {budget_mb:g} MB")
        titles = {
            "accuracy": ("Accuracy after each fine-tune epoch (0 = before the first step)", "accuracy"),
            "mem_peak_abs_mb": ("Peak RSS of the fine-tune process (ru_maxrss)", "MB"),
            "mem_now_mb": ("RSS at the end of each epoch (psutil)", "MB"),
            "mem_delta_mb": ("Peak RSS growth over the pre-fine-tune baseline", "MB"),
            "ckpt": ("Durable checkpoint write (write+fsync+rename+dir fsync)", "ms"),
        }
        title, ylabel = titles[key]
        ax.set_title(f"{title}\n({source} photos)", fontsize=10)
        ax.set_xlabel("fine-tune epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if key == "accuracy":
            ax.set_ylim(0, 1.05)
        else:
            ax.set_ylim(bottom=0)  # MB and ms from zero: a flat line is flat, not a zoomed-in wobble
        if ax.get_legend_handles_labels()[0]:  # below the axes: a legend never covers the data
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
        fig.tight_layout()
        path = os.path.join(directory, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _per_class_bars(ax, results: Sequence[Dict[str, Any]]) -> None:
    """Held-out accuracy per class: the factory's model as it came (grey), then each configuration's last epoch."""
    classes = held_out_classes(results)
    if not classes:
        return
    series = [("pretrained", "lightgray", (results[0].get("before") or {}).get("pretrained_acc_per_class") or {})]
    series += [(r["config"], f"C{i}", r.get("final_acc_per_class") or {}) for i, r in enumerate(results)]
    width = 0.8 / len(series)
    for k, (label, colour, values) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(classes))]
        ax.bar(xs, [values.get(c, 0.0) for c in classes], width=width, color=colour, label=label)
    new = set(results[0].get("new_classes") or [])
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels([f"{c}\n(new)" if c in new else c for c in classes], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out accuracy")
    ax.set_title("Per class: the factory's model, and after the last epoch", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)


def write_all(results, targets, directory, lines, budget_mb=None) -> Dict[str, Any]:
    """CSV, log and plots into ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    csv_path = os.path.join(directory, "results.csv")
    write_csv(results, targets, csv_path)
    log_path = os.path.join(directory, "log.txt")
    with open(log_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    plots = plots_in_child(results, targets, os.path.join(directory, "plots"), budget_mb)
    return {"directory": directory, "csv": csv_path, "log": log_path, "plots": plots}


def plots_in_child(results, targets, directory, budget_mb=None) -> List[str]:
    """:func:`write_plots` in a child process: matplotlib (~40 MB) never loads into the benchmark process, where
    it would sit in every later benchmark's RSS. OSError with the child's last line when it fails."""
    import json
    import subprocess
    import sys

    job = json.dumps({"results": results, "targets": list(targets), "directory": directory, "budget_mb": budget_mb})
    child = subprocess.run(
        [sys.executable, "-m", "bench_support.continual.outputs"],
        input=job, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no message"])[-1]
        raise OSError(f"the plots were not drawn ({last})")
    return json.loads(child.stdout)


def _draw_from_stdin() -> None:
    import json
    import sys

    job = json.load(sys.stdin)
    json.dump(write_plots(job["results"], job["targets"], job["directory"], job["budget_mb"]), sys.stdout)


if __name__ == "__main__":
    _draw_from_stdin()
