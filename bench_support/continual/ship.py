"""The factory models that ship with the suite: found, checked, installed into the cache, and rebuilt on request.

A robot leaves the factory with its model; the device only fine-tunes it. The smoke and quick profiles' factory
checkpoints (smallcnn, 1.5 MB each) therefore live in ``bench_support/continual/shipped/``, each beside the sidecar
its pretraining wrote, which names its recipe (the file name is the cache key of
:class:`~bench_support.continual.factory.Pretraining`), its size and SHA-256. A run whose recipe matches a shipped
checkpoint installs it into ``<data dir>/pretrained/`` instead of pretraining, and says so; any other recipe (another
model, image size, seed, ``--cl-pretrain-images``, the full profile, a changed ``PRETRAIN_RECIPE``) pretrains on the
device as before.

    python -m bench_support.continual.ship            rebuild each shipped checkpoint from its recipe in a temp
                                                      folder and say how close it comes to the shipped one
    python -m bench_support.continual.ship --write    ... and replace the shipped files with the rebuilt ones
    python -m bench_support.continual.ship --profile smoke     only that profile's
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench_support.files import read_json, write_atomic, write_json_atomic

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shipped")
#: The profiles whose factory checkpoints ship, with the continual options' defaults (tests/test_ship.py holds
#: them to the options' own defaults).
SHIPPED_PROFILES = ("smoke", "quick")
DEFAULT_SETTINGS = {"model": "smallcnn", "image_size": 128, "seed": 0, "weights": "synthetic"}


def shipped(name: str, folder: str = SHIPPED_DIR) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(checkpoint path, sidecar) of the shipped checkpoint for cache key ``name``, if one ships and is intact."""
    from bench_support.continual.factory import fingerprint

    checkpoint = os.path.join(folder, name + ".pt")
    info = read_json(os.path.join(folder, name + ".json"))
    if not os.path.isfile(checkpoint) or not isinstance(info, dict):
        return None
    try:
        found = fingerprint(checkpoint)
    except OSError:
        return None
    if found["checkpoint_sha256"] != info.get("checkpoint_sha256"):
        return None  # a damaged copy: the run pretrains instead, as with a damaged cache
    return checkpoint, info


def install(source: str, info: Dict[str, Any], checkpoint: str, sidecar: str) -> Dict[str, Any]:
    """Copy a shipped checkpoint into the cache (atomically; the sidecar last, as pretraining writes them)."""
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    write_atomic(checkpoint, lambda tmp: shutil.copyfile(source, tmp), ".pt")
    info = dict(info, factory_source="shipped")
    write_json_atomic(sidecar, info)
    return info


def _recipes(profiles: Tuple[str, ...] = SHIPPED_PROFILES) -> List[Any]:
    from bench_support.continual.factory import pretraining_for
    from bench_support.profiles import PROFILES

    return [pretraining_for(PROFILES[name], DEFAULT_SETTINGS) for name in profiles]


def _compare(recipe: Any, rebuilt: Dict[str, Any], kept: Optional[Dict[str, Any]]) -> str:
    if kept is None:
        return f"{recipe.name}: nothing shipped to compare with"
    same = rebuilt["checkpoint_sha256"] == kept["checkpoint_sha256"]
    acc_new, acc_old = rebuilt.get("pretrain_synth_acc"), kept.get("pretrain_synth_acc")
    scores = (
        f"synthetic accuracy {acc_new:.4f} rebuilt vs {acc_old:.4f} shipped ({acc_new - acc_old:+.4f})"
        if isinstance(acc_new, float) and isinstance(acc_old, float)
        else "no synthetic accuracy to compare"
    )
    return f"{recipe.name}: {'bit-identical' if same else 'not bit-identical'}; {scores}"


def rebuild(write: bool, profiles: Tuple[str, ...] = SHIPPED_PROFILES, out: Callable[[str], None] = print) -> int:
    """Pretrain the shipped recipes afresh and compare; with ``write``, ship the rebuilt files."""
    for recipe in _recipes(profiles):
        kept = shipped(recipe.name)
        with tempfile.TemporaryDirectory(prefix="edge-bench-ship-") as scratch:
            started = time.monotonic()
            info = recipe.ensure(scratch, os.getcwd(), out, bar=None, use_shipped=False)
            out(f"{recipe.name}: pretrained in {time.monotonic() - started:.0f} s")
            out(_compare(recipe, info, None if kept is None else kept[1]))
            if write:
                os.makedirs(SHIPPED_DIR, exist_ok=True)
                for ext in (".pt", ".json"):
                    source = os.path.join(scratch, "pretrained", recipe.name + ext)
                    write_atomic(
                        os.path.join(SHIPPED_DIR, recipe.name + ext), lambda t, s=source: shutil.copyfile(s, t)
                    )
                out(f"{recipe.name}: written to {SHIPPED_DIR}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench_support.continual.ship", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the shipped checkpoints with the rebuilt ones")
    parser.add_argument("--profile", choices=SHIPPED_PROFILES, action="append", help="only this profile's (repeatable)")
    args = parser.parse_args(argv)
    return rebuild(args.write, tuple(args.profile or SHIPPED_PROFILES))


if __name__ == "__main__":
    sys.exit(main())
