"""The continual-learning scenario as the benchmark sees it: prepared once, run per configuration.

The plugin's side, in order: :func:`settings_from` (the options, checked, at configure
time); :func:`prepare` (never timed: choose the photos, the user's folder or stand-ins
when it holds none; generate the synthetic set and pretrain on it once, cached under
the data directory; find the checkpoint targets and their filesystems);
:meth:`Scenario.run` per configuration (a fresh worker process loads the pretrained
model and the photos, untimed, then each benchmark round is one fine-tune epoch in it;
after each round, untimed, the worker evaluates, measures memory and writes the
checkpoints, and the epoch line is printed); :meth:`Scenario.close`; and
:meth:`Scenario.finish`, which writes the outputs and returns the run's
:class:`~bench_support.continual.outputs.Outcome`.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional

from bench_support.continual import outputs, photos
from bench_support.continual.factory import pretraining_for
from bench_support.continual.outputs import Outcome
from bench_support.continual.standin import NEW_CLASSES, STANDIN_CLASSES, ensure_standin
from bench_support.continual.targets import checkpoint_targets, remove_targets, unavailable_lines
from bench_support.continual.worker import Worker
from bench_support.errors import Unavailable, UserError
from bench_support.profiles import Profile

STANDIN_PER_CLASS = 12
#: The per-configuration figures repeated in the run's summary (edge_bench.continual).
SUMMARY_KEYS = ("config", "final_acc", "final_acc_known", "final_acc_new", "final_acc_ncm", "pretrained_acc", "lift",
                "forgetting",
                "final_synth_acc", "finetune_s", "mem_peak_abs_mb", "mem_import_mb", "mem_delta_mb", "mem_now_mb",
                "mem_baseline_mb", "rss_budget_mb", "within_budget", "trainable_params")  # fmt: skip


def settings_from(options: Mapping[str, Any], profile: Profile, root: str) -> Mapping[str, Any]:
    """The scenario's settings (read-only): defaults resolved, paths and weights checked.

    ``options``: model, image_size, batch, workers, epochs (None: the profile's
    ``finetune_epochs``), seed, weights, rss_budget_mb, data_real (None:
    ``<root>/data_real``), allow_network, pretrain_images (None: the profile's
    ``factory_images``, see :func:`~bench_support.continual.factory.pretraining_for`).
    Numbers come already checked by the option parsers. Raises :class:`UserError`.
    """
    given = options.get("data_real")
    data_real = os.path.abspath(os.path.expanduser(given or os.path.join(root, "data_real")))
    if given and not os.path.isdir(data_real):
        raise UserError(
            f"--data-real {data_real}: {'not a directory' if os.path.exists(data_real) else 'no such directory'}"
        )
    if given:
        try:
            os.listdir(data_real)
        except OSError as exc:  # else "no files in it" below, for a folder that is full but not ours to read
            raise UserError(f"--data-real {data_real}: cannot be read ({exc.strerror})") from None
    if given and not photos.has_photo_files(data_real):
        # Named on purpose, so photos were meant to be there: stand-ins in their place answer another question.
        raise UserError(
            f"--data-real {data_real}: no files in it; leave the option out to use generated stand-in photos"
        )
    settings = {
        "model": options["model"],
        "image_size": options["image_size"],
        "batch": options["batch"],
        "workers": options["workers"],
        "epochs": options.get("epochs") or profile.finetune_epochs,
        "seed": options["seed"],
        "weights": options["weights"],
        "rss_budget_mb": options.get("rss_budget_mb"),
        "data_real": data_real,
        "allow_network": bool(options.get("allow_network")),
        "imagenet_path": None,
        "pretrain_images": options.get("pretrain_images"),
    }
    if settings["weights"] == "imagenet" and settings["model"] == "smallcnn":
        raise UserError("--cl-weights imagenet: smallcnn has no ImageNet weights; add --cl-model mobilenet_v3_small")
    if settings["weights"] == "imagenet":
        from bench_support.continual.model import imagenet_weights_path

        path, name = imagenet_weights_path(settings["model"])
        if not os.path.isfile(path):
            raise UserError(
                f"--cl-weights imagenet: {name} is not in the local torch cache ({os.path.dirname(path)}); "
                "the suite never downloads: copy it there or use --cl-weights synthetic"
            )
        settings["imagenet_path"] = path
    return MappingProxyType(settings)


@dataclass
class PhotoChoice:
    source: str  # "user" or "stand-in"
    photo_set: photos.PhotoSet
    note: Optional[str] = None

    def describe(self, train: List, held: List) -> Dict[str, Any]:
        return {
            "source": self.source,
            "directory": self.photo_set.directory,
            "classes": self.photo_set.counts(),
            "fine_tune_photos": len(train),
            "held_out_photos": len(held),
            "held_out_rule": f"per class: {photos.HOLDOUT_FRAC:.0%} rounded up, at least 1, leaving 2 to learn from",
            "skipped": [{"file": name, "reason": why} for name, why in self.photo_set.problems],
            "note": self.note,
        }


def choose_photos(data_real: str, data_dir: str, seed: int = 0) -> PhotoChoice:
    """The user's photos if the folder holds any file, else the generated stand-ins."""
    if os.path.isdir(data_real) and photos.has_photo_files(data_real):
        return PhotoChoice("user", photos.scan(data_real))
    directory = ensure_standin(data_dir, STANDIN_PER_CLASS, seed)
    note = (
        f"no photos in {data_real}: using {STANDIN_PER_CLASS * len(STANDIN_CLASSES)} generated stand-in photos, "
        f"{len(NEW_CLASSES)} of their {len(STANDIN_CLASSES)} classes new to the model "
        f"(put yours there, named like orange_square_01.jpg, or pass --data-real DIR)"
    )
    return PhotoChoice("stand-in", photos.scan(directory), note)


def prepare(
    settings: Mapping[str, Any],
    profile: Profile,
    data_dir: str,
    root: str,
    live: Callable[[str], None],
    bar: Optional[Callable[[str], Callable[[int, int], None]]] = None,
) -> Scenario:
    """Photos chosen, pretraining ensured, checkpoint targets made: the scenario, ready to run.

    Notes (stand-ins used, files skipped, pretraining started) go to ``live`` at once,
    prefixed ``edge-bench: `` like the suite's other messages, and are kept for the
    end-of-run summary; ``bar(label)`` shows the pretraining's progress. Raises
    :class:`Unavailable` when the photos cannot be used, and :class:`UserError` (a
    :class:`~bench_support.workloads.data.DataError`, a
    :class:`~bench_support.continual.worker.WorkerError`) when the data or the
    pretraining fails.
    """
    notes: List[str] = []

    def note(line: str) -> None:
        notes.append(line)
        live(f"edge-bench: {line}")

    choice = choose_photos(settings["data_real"], data_dir, settings["seed"])
    for line in (choice.note, choice.photo_set.problem_line()):
        if line:
            note(line)
    reason = choice.photo_set.unusable_reason()
    if reason:
        raise Unavailable(reason)
    pretrained = pretraining_for(profile, settings).ensure(data_dir, root, note, bar)
    targets = checkpoint_targets(root)  # private folders, named after this process (see targets)
    for line in unavailable_lines(targets):
        note(line)
    return Scenario(settings, choice, pretrained, targets, root, live, notes)


@dataclass
class Scenario:
    settings: Mapping[str, Any]  # from settings_from
    choice: PhotoChoice
    pretrained: Dict[str, Any]  # Pretraining.ensure's figures
    targets: Dict[str, Dict[str, Any]]
    cwd: str
    live: Callable[[str], None]
    notes: List[str] = field(default_factory=list)
    results: List[Dict[str, Any]] = field(default_factory=list)
    lines: List[str] = field(default_factory=list)  # the epoch lines: log.txt

    def __post_init__(self) -> None:
        # The same photos are held out in every configuration: accuracies compare.
        self.train, self.held_out = photos.stratified_split(self.choice.photo_set.items, self.settings["seed"])

    def say(self, line: str) -> None:
        self.lines.append(line)
        self.live(line)

    def worker_config(self, finetune: str, optimizer: str) -> Dict[str, Any]:
        keys = ("model", "image_size", "batch", "workers", "epochs", "seed", "allow_network")
        config = {k: self.settings[k] for k in keys}
        config.update(
            finetune=finetune,
            optimizer=optimizer,
            pretrained=self.pretrained["pretrained"],
            synth_dir=self.pretrained["synth_dir"],
            photo_classes=self.choice.photo_set.classes,
            train=self.train,
            held_out=self.held_out,
            ckpt_dirs={label: t["directory"] for label, t in self.targets.items() if t.get("directory")},
        )
        return config

    def run(self, harness, finetune: str, optimizer: str) -> Dict[str, Any]:
        """One configuration: its epochs as benchmark rounds; returns the result (also kept)."""
        config_id = f"{finetune}-{optimizer}"
        s = self.settings
        rows: List[Dict[str, Any]] = []
        labels = list(self.targets)
        # Leaving the block ends the worker: at once on Ctrl-C, after a short wait for "quit" otherwise.
        with Worker("finetune", self.worker_config(finetune, optimizer), self.cwd) as worker:
            ready = worker.read()["ready"]
            self.say(
                f"continual {config_id}: {s['model']}, {s['image_size']} px, batch {s['batch']}, "
                f"workers {s['workers']}, {s['epochs']} epochs on {len(self.train)} "
                f"{self.choice.source} photos, {len(self.held_out)} held out"
            )
            before = {
                "acc": ready["acc_before"],
                "acc_per_class": ready["acc_per_class_before"],
                "synth_acc": ready["synth_acc_before"],
                "acc_ncm": ready["acc_ncm_before"],
                "acc_ncm_per_class": ready["acc_ncm_per_class_before"],
                "pretrained_acc": ready["pretrained_acc"],
                "pretrained_acc_per_class": ready["pretrained_acc_per_class"],
                "pretrained_synth_acc": ready["pretrained_synth_acc"],
            }
            if ready["new_classes"]:
                self.say(
                    f"pretrained model as it came: acc={ready['pretrained_acc']:.3f} "
                    f"(it cannot answer {', '.join(ready['new_classes'])}: new rows imprinted from their photos)"
                )
            synth = before["synth_acc"]
            self.say(
                f"epoch 0: acc={before['acc']:.3f} (before fine-tuning)" + (f" synth_acc={synth:.3f}" if synth else "")
            )

            def after() -> None:
                row = worker.request("after")
                rows.append(row)
                self.say(outputs.epoch_line(row, labels))

            harness.run(lambda: worker.request("epoch"), rounds=s["epochs"], teardown=after, memory=False)
        result = self._result(config_id, finetune, optimizer, ready, before, rows)
        self.results.append(result)
        return result

    def _result(self, config_id, finetune, optimizer, ready, before, rows) -> Dict[str, Any]:
        from bench_support.continual.incremental import final_accuracies  # torch: not at configure time

        budget = self.settings.get("rss_budget_mb")
        peak = max(r["mem_peak_abs_mb"] for r in rows)
        result: Dict[str, Any] = {
            "config": config_id,
            "finetune": finetune,
            "optimizer": optimizer,
            "before": before,
            "epochs": rows,
            **final_accuracies(rows[-1]),
            "new_classes": ready["new_classes"],
            "pretrained_acc": ready["pretrained_acc"],
            # What learning on the device added, and what it cost the known classes (points of accuracy).
            "lift": round(rows[-1]["acc"] - ready["pretrained_acc"], 4),
            "final_synth_acc": rows[-1]["synth_acc"],
            "forgetting": None
            if rows[-1]["synth_acc"] is None
            else round(ready["pretrained_synth_acc"] - rows[-1]["synth_acc"], 4),
            "finetune_s": round(sum(r["time_s"] for r in rows), 4),
            "mem_peak_abs_mb": peak,
            "mem_delta_mb": max(r["mem_delta_mb"] for r in rows),
            "mem_now_mb": rows[-1]["mem_now_mb"],
            "mem_baseline_mb": ready["mem_baseline_mb"],
            "mem_import_mb": ready["mem_import_mb"],
            "mem_peak_reset": ready["mem_peak_reset"],
            "mem_peak_method": "ru_maxrss of the fine-tune worker (started through /bin/sh: its own peak only)"
            + (
                "; delta over a high-water mark reset before the first step"
                if ready["mem_peak_reset"]
                else "; delta over the peak so far: no reset here, setup's peak can hide training's"
            ),
            "rss_budget_mb": budget,
            "within_budget": None if budget is None else peak <= budget,
            "trainable_params": ready["trainable_params"],
            "views_per_epoch": ready["views_per_epoch"],
            "replay_per_batch": ready["replay_per_batch"],
            "total_params": ready["total_params"],
            "model_classes": ready["model_classes"],
            "torch_threads": ready["torch_threads"],
            "torchvision_loaded": ready.get("torchvision_loaded"),
            "photos": self.choice.describe(self.train, self.held_out),
            "pretraining": {k: v for k, v in self.pretrained.items() if k not in ("synth_dir",)},
            "ckpt_targets": self.targets,
            "settings": dict(self.settings),
        }
        for label, target in self.targets.items():
            values = [(r["ckpt"].get(label) or {}).get("ms") for r in rows]
            values = [v for v in values if v is not None]
            result[f"{label}_ms"] = statistics.median(values) if values else None
            if not values:
                errors = [(r["ckpt"].get(label) or {}).get("error") for r in rows]
                result[f"{label}_unavailable"] = target.get("unavailable") or next((e for e in errors if e), None)
        return result

    def close(self) -> None:
        """Remove the checkpoint targets' directories (safe to call twice)."""
        remove_targets(self.targets)

    def finish(self, directory: str) -> Outcome:
        """CSV, log and plots into ``directory`` when a configuration ran; the run's :class:`Outcome`."""
        if not self.results:
            return Outcome(None, [], None, None, list(self.notes), [])
        budget = self.settings.get("rss_budget_mb")
        try:
            written = outputs.write_all(self.results, list(self.targets), directory, self.lines, budget)
        except OSError as exc:
            why = exc.strerror or str(exc)
            written = {"error": f"cannot write the continual-learning outputs to {directory}: {why}"}
        return Outcome(
            outputs=written,
            configs=[{k: r[k] for k in SUMMARY_KEYS if k in r} for r in self.results],
            photos=self.results[0]["photos"],
            pretraining=self.results[0]["pretraining"],
            notes=list(self.notes),
            summaries=[outputs.summary_line(r) for r in self.results],
        )
