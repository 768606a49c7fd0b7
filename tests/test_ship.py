"""The shipped factory models: a matching recipe installs one instead of pretraining; anything else pretrains."""

import json
import os
import shutil

import pytest
from _pytest.config.argparsing import Parser

from bench_support.continual import factory, ship
from bench_support.files import read_json
from bench_support.plugin.options import pytest_addoption


def test_the_shipped_recipes_are_the_continual_options_defaults():
    parser = Parser(_ispytest=True)  # the options as pytest parses them, without a pytest run
    pytest_addoption(parser)
    defaults = parser.parse([])
    assert ship.DEFAULT_SETTINGS == {
        "model": defaults.cl_model, "image_size": defaults.cl_image_size, "seed": defaults.data_seed,
        "weights": defaults.cl_weights,
    }  # fmt: skip


def test_every_shipped_profile_has_its_checkpoint_intact():
    # A recipe change without `python -m bench_support.continual.ship --write` fails here, not on a user's device.
    for recipe in ship._recipes():
        found = ship.shipped(recipe.name)
        assert found is not None, (
            f"{recipe.name} does not ship (rebuild: python -m bench_support.continual.ship --write)"
        )
        assert found[1]["checkpoint_bytes"] == os.path.getsize(found[0]) < 4 * 2**20


@pytest.fixture
def no_pretraining(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pretrained although a shipped checkpoint fits")

    monkeypatch.setattr(factory, "run_once", refuse)


def test_a_matching_recipe_installs_the_shipped_checkpoint_and_says_so(tmp_path, no_pretraining):
    recipe = ship._recipes()[0]  # the smoke profile's: its synthetic set is small
    lines = []
    info = recipe.ensure(str(tmp_path), str(tmp_path), lines.append)
    cached = tmp_path / "pretrained" / f"{recipe.name}.pt"
    assert info["pretrained"] == str(cached) and info["factory_source"] == "shipped"
    assert factory.fingerprint(str(cached)) == {k: info[k] for k in ("checkpoint_bytes", "checkpoint_sha256")}
    assert cached.stat().st_mode & 0o777 == 0o644
    assert len(lines) == 1 and lines[0].startswith(f"factory model: the shipped {recipe.name}.pt (SHA-256 ")
    again = recipe.ensure(str(tmp_path), str(tmp_path), lines.append)  # now from the cache, silently
    assert again["pretrain_cached"] is True and len(lines) == 1
    assert read_json(str(tmp_path / "pretrained" / f"{recipe.name}.json"))["factory_source"] == "shipped"


@pytest.mark.parametrize("damage", ["bytes", "sidecar"])
def test_a_damaged_shipped_copy_is_not_used(tmp_path, monkeypatch, damage):
    recipe = ship._recipes()[0]
    folder = tmp_path / "shipped"
    shutil.copytree(ship.SHIPPED_DIR, folder)
    if damage == "bytes":
        with open(folder / f"{recipe.name}.pt", "r+b") as fh:
            fh.seek(100)
            fh.write(b"\0\1\2\3")
    else:
        (folder / f"{recipe.name}.json").write_text(json.dumps({"checkpoint_sha256": "0" * 64})[:20])
    assert ship.shipped(recipe.name, str(folder)) is None
