"""The continual-learning scenario as the benchmark sees it: prepared once, run per configuration.

Preparation (never timed): choose the photos (the user's folder, or stand-ins when it
holds none), generate the synthetic set, pretrain on it once (cached under the data
directory), find the checkpoint targets and their filesystems. Running one
configuration: a fresh worker process loads the pretrained model and the photos
(untimed), then each benchmark round is one fine-tune epoch in it; after each round,
untimed, the worker evaluates, measures memory and writes the checkpoints, and the
epoch line is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from . import cl_outputs, photos
from .cl_worker import Worker, run_once
from .data import DatasetSpec, ensure_dataset
from .diskio import storage_of
from .standin import ensure_standin

#: Bumped when the pretraining recipe changes: old cached checkpoints are not reused.
PRETRAIN_RECIPE = 2
STANDIN_PER_CLASS = 12
#: The factory phase per profile: (synthetic images rendered for it, epochs over them).
#: quick: ~1 minute on a 2-core CPU, once per data directory (the checkpoint is cached).
FACTORY = {"smoke": (512, 1), "quick": (8192, 4), "full": (16384, 4)}
#: The factory trains at this size (or the fine-tune size, if smaller): 4x fewer pixels than 128.
FACTORY_IMAGE_SIZE = 64
#: The per-configuration figures repeated in the run's summary (edge_bench.continual).
SUMMARY_KEYS = (
    "config",
    "final_acc",
    "final_synth_acc",
    "finetune_s",
    "mem_peak_abs_mb",
    "mem_delta_mb",
    "mem_now_mb",
    "mem_baseline_mb",
    "rss_budget_mb",
    "within_budget",
    "trainable_params",
)


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
        f"no photos in {data_real}: using {STANDIN_PER_CLASS * 4} generated stand-in photos "
        f"(put yours there, named like orange_square_01.jpg, or pass --data-real DIR)"
    )
    return PhotoChoice("stand-in", photos.scan(directory), note)


@dataclass
class Pretraining:
    """How to make the factory checkpoint; the recipe is part of its cache key."""

    model: str
    image_size: int  # the fine-tune size: BatchNorm statistics and synthetic accuracy are taken there
    n_train: int  # the on-disk synthetic set (BatchNorm statistics, validation)
    n_val: int
    factory_images: int  # rendered in memory for training
    epochs: int
    seed: int
    weights: str = "synthetic"  # or "imagenet": start from cached ImageNet weights
    imagenet_path: Optional[str] = None

    @property
    def factory_size(self) -> int:
        return min(FACTORY_IMAGE_SIZE, self.image_size)

    @property
    def name(self) -> str:
        spec = DatasetSpec(self.n_train, self.n_val, self.image_size, self.seed).name
        return (
            f"{self.model}-{spec}-f{self.factory_images}x{self.factory_size}px-e{self.epochs}"
            f"-{self.weights}-r{PRETRAIN_RECIPE}"
        )

    def ensure(self, data_dir: str, cwd: str, progress: Callable[[str], None]) -> Dict[str, Any]:
        """The cached checkpoint and its figures; pretrains (in a worker) when missing."""
        spec = DatasetSpec(self.n_train, self.n_val, self.image_size, self.seed)
        synth_dir = ensure_dataset(data_dir, spec)
        cache = os.path.join(data_dir, "pretrained")
        checkpoint = os.path.join(cache, self.name + ".pt")
        sidecar = os.path.join(cache, self.name + ".json")
        info = _read_json(sidecar)
        if info is not None and os.path.isfile(checkpoint):
            info.update(pretrained=checkpoint, synth_dir=synth_dir, pretrain_cached=True)
            return info
        os.makedirs(cache, exist_ok=True)
        progress(
            f"pretraining {self.model} on {self.factory_images} synthetic {self.factory_size} px images, "
            f"{self.epochs} epochs (once; cached in {cache})"
        )
        config = {
            "model": self.model,
            "seed": self.seed,
            "weights": self.weights,
            "imagenet_path": self.imagenet_path,
            "synth_dir": synth_dir,
            "image_size": self.image_size,
            "factory_images": self.factory_images,
            "factory_size": self.factory_size,
            "epochs": self.epochs,
            "output": checkpoint,
        }
        info = run_once("pretrain", config, cwd)
        info.update(pretrained_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), recipe=PRETRAIN_RECIPE, weights=self.weights)
        tmp = sidecar + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(info, fh, indent=1)
        os.replace(tmp, sidecar)
        info.update(pretrained=checkpoint, synth_dir=synth_dir, pretrain_cached=False)
        return info


def pretraining_for(profile, settings: Dict[str, Any]) -> Pretraining:
    """The factory recipe: the profile's image count and epochs, unless the options say otherwise."""
    images, epochs = FACTORY[profile.name]
    return Pretraining(
        model=settings["model"],
        image_size=settings["image_size"],
        n_train=profile.n_train,
        n_val=profile.n_val,
        factory_images=settings.get("pretrain_images") or images,
        epochs=epochs,
        seed=settings["seed"],
        weights=settings["weights"],
        imagenet_path=settings.get("imagenet_path"),
    )


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def checkpoint_targets(project_dir: str, shm_dir: str = "/dev/shm") -> Dict[str, Dict[str, Any]]:
    """{column label: facts} for the disk directory and tmpfs, labelled by the filesystem found."""
    targets: Dict[str, Dict[str, Any]] = {}
    os.makedirs(project_dir, exist_ok=True)
    disk = storage_of(project_dir)
    shm = storage_of(shm_dir) if os.path.isdir(shm_dir) else {"fs_type": None}
    disk_label = disk["fs_type"] or "disk"
    shm_label = "tmpfs"
    if shm.get("fs_type") == "tmpfs" and disk_label == "tmpfs":
        disk_label, shm_label = "disk-tmpfs", "shm-tmpfs"  # the project itself is on tmpfs
    targets[disk_label] = dict(disk, directory=project_dir, role="disk")
    if shm.get("fs_type") == "tmpfs":
        directory = os.path.join(shm_dir, f"edge-bench-cl-{os.getpid()}")
        os.makedirs(directory, exist_ok=True)
        targets[shm_label] = dict(shm, directory=directory, role="memory")
    else:
        found = shm.get("fs_type") or "nothing"
        targets[shm_label] = {"directory": None, "role": "memory", "unavailable": f"no tmpfs at {shm_dir} ({found})"}
    return targets


def remove_targets(targets: Dict[str, Dict[str, Any]]) -> None:
    for target in targets.values():
        if target.get("directory"):
            shutil.rmtree(target["directory"], ignore_errors=True)


@dataclass
class Scenario:
    settings: Dict[str, Any]  # model, image_size, batch, workers, epochs, seed, weights, budget...
    choice: PhotoChoice
    pretrained: Dict[str, Any]
    targets: Dict[str, Dict[str, Any]]
    cwd: str
    live: Callable[[str], None]
    results: List[Dict[str, Any]] = field(default_factory=list)
    lines: List[str] = field(default_factory=list)

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
        epochs = self.settings["epochs"]
        worker = Worker("finetune", self.worker_config(finetune, optimizer), self.cwd)
        rows: List[Dict[str, Any]] = []
        labels = list(self.targets)
        try:
            ready = worker.read()["ready"]
            s = self.settings
            self.say(
                f"continual {config_id}: {s['model']}, {s['image_size']} px, batch {s['batch']}, "
                f"workers {s['workers']}, {epochs} epochs on {len(self.train)} "
                f"{self.choice.source} photos, {len(self.held_out)} held out"
            )
            before = {"epoch": 0, "acc": ready["acc_before"], "synth_acc": ready["synth_acc_before"]}
            self.say(
                f"epoch 0: acc={before['acc']:.3f} (pretrained, before fine-tuning)"
                + (f" synth_acc={before['synth_acc']:.3f}" if before["synth_acc"] is not None else "")
            )

            def after() -> None:
                row = worker.request("after")
                rows.append(row)
                self.say(cl_outputs.epoch_line(row, labels))

            harness.run(lambda: worker.request("epoch"), rounds=epochs, teardown=after, memory=False)
        finally:
            worker.close()
        result = self._result(config_id, finetune, optimizer, ready, before, rows)
        self.results.append(result)
        return result

    def _result(self, config_id, finetune, optimizer, ready, before, rows) -> Dict[str, Any]:
        budget = self.settings.get("rss_budget_mb")
        peak = max(r["mem_peak_abs_mb"] for r in rows)
        result: Dict[str, Any] = {
            "config": config_id,
            "finetune": finetune,
            "optimizer": optimizer,
            "before": {"acc": before["acc"], "synth_acc": before["synth_acc"]},
            "epochs": rows,
            "final_acc": rows[-1]["acc"],
            "final_synth_acc": rows[-1]["synth_acc"],
            "finetune_s": round(sum(r["time_s"] for r in rows), 4),
            "mem_peak_abs_mb": peak,
            "mem_delta_mb": max(r["mem_delta_mb"] for r in rows),
            "mem_now_mb": rows[-1]["mem_now_mb"],
            "mem_baseline_mb": ready["mem_baseline_mb"],
            "mem_peak_method": "ru_maxrss of the fine-tune worker (started through /bin/sh: its own peak only)",
            "rss_budget_mb": budget,
            "within_budget": None if budget is None else peak <= budget,
            "trainable_params": ready["trainable_params"],
            "total_params": ready["total_params"],
            "model_classes": ready["model_classes"],
            "torch_threads": ready["torch_threads"],
            "photos": self.choice.describe(self.train, self.held_out),
            "pretraining": {k: v for k, v in self.pretrained.items() if k not in ("synth_dir",)},
            "ckpt_targets": self.targets,
            "settings": dict(self.settings),
        }
        if result["final_synth_acc"] is None:
            result["synth_acc_unavailable"] = "the photos' classes are not the synthetic set's: a new head was trained"
        for label, target in self.targets.items():
            values = [(r["ckpt"].get(label) or {}).get("ms") for r in rows]
            values = [v for v in values if v is not None]
            result[f"{label}_ms"] = statistics.median(values) if values else None
            if not values:
                errors = [(r["ckpt"].get(label) or {}).get("error") for r in rows]
                result[f"{label}_unavailable"] = target.get("unavailable") or next((e for e in errors if e), None)
        return result

    def summary_line(self, result: Dict[str, Any]) -> str:
        line = (
            f"continual {result['config']}: held-out acc {result['final_acc']:.3f} "
            f"({result['photos']['source']} photos), {len(result['epochs'])} epochs in {result['finetune_s']:.1f} s, "
            f"peak {result['mem_peak_abs_mb']:.0f} MB, delta {result['mem_delta_mb']:.0f} MB, "
            f"now {result['mem_now_mb']:.0f} MB"
        )
        if result["within_budget"] is not None:
            verdict = "within" if result["within_budget"] else "over"
            line += f" — {verdict} the {result['rss_budget_mb']:g} MB budget"
        return line
