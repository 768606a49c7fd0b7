"""The generated dataset survives a killed generation and notices damage: temp files, extras, hashes, manifest."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.workloads import manifest as integrity
from bench_support.workloads.data import (
    FORMAT_VERSION,
    DataError,
    DatasetSpec,
    dataset_bytes,
    ensure_dataset,
    image_folders,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = DatasetSpec(n_train=16, n_val=8, image_size=24, seed=3)


def _files(directory):
    """{relative path: bytes} of every file under the split folders."""
    out = {}
    for split in ("train", "val"):
        for base, _, names in os.walk(os.path.join(directory, split)):
            for name in names:
                with open(os.path.join(base, name), "rb") as fh:
                    out[os.path.relpath(os.path.join(base, name), directory)] = fh.read()
    return out


def _load_all(directory):
    """Every sample of both ImageFolders, decoded: what a training epoch does."""
    train, val = image_folders(directory, SPEC.image_size)
    for dataset in (train, val):
        for i in range(len(dataset)):
            dataset[i]
    return len(train), len(val)


def _calls():
    calls = []
    return calls, lambda done, total: calls.append((done, total))


# --- 5. an interrupted generation -------------------------------------------------------

KILLED_CHILD = """
import os, signal, sys
from bench_support.workloads import data

real = data.write_atomic
count = [0]

def dying(path, write, suffix=""):
    count[0] += 1
    if count[0] < 6:
        return real(path, write, suffix)

    def write_then_die(tmp):
        write(tmp)
        if sys.argv[2] == "torn":
            with open(tmp, "r+b") as fh:
                fh.truncate(os.path.getsize(tmp) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    return real(path, write_then_die, suffix)

data.write_atomic = dying
data.ensure_dataset(sys.argv[1], data.DatasetSpec(16, 8, 24, seed=3))
"""


@pytest.mark.parametrize("leftover", ["whole", "torn"])
def test_a_generation_killed_mid_write_resumes_cleanly(tmp_path, leftover):
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_CHILD), str(tmp_path), leftover],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    directory = os.path.join(str(tmp_path), SPEC.name)
    temps = [rel for rel in _files(directory) if os.path.basename(rel).startswith(".tmp-")]
    assert len(temps) == 1  # what kill -9 leaves behind
    assert not temps[0].lower().endswith(integrity.IMAGE_EXTENSIONS)  # which ImageFolder never loads

    calls, progress = _calls()
    assert ensure_dataset(str(tmp_path), SPEC, progress) == directory
    assert calls[-1] == (19, 19)  # the 5 files written before the kill are kept
    assert not any(os.path.basename(rel).startswith(".tmp-") for rel in _files(directory))
    assert _load_all(directory) == (16, 8)


def test_a_leftover_temp_file_of_the_old_name_is_removed(tmp_path):
    directory = ensure_dataset(str(tmp_path), SPEC)
    first = sorted(_files(directory))[0]
    leftover = os.path.join(directory, os.path.dirname(first), ".tmp-k1ll3d.jpg")  # the name before this fix
    with open(os.path.join(directory, first), "rb") as src, open(leftover, "wb") as dst:
        dst.write(src.read())  # a whole JPEG: ImageFolder would count 17
    ensure_dataset(str(tmp_path), SPEC)
    assert not os.path.exists(leftover) and _load_all(directory) == (16, 8)


@pytest.mark.parametrize("extra", ["train/blue_circle/blue_circle_99999.jpg", "val/purple_star/x.png"])
def test_files_the_dataset_did_not_generate_are_reported_not_loaded(tmp_path, extra):
    directory = ensure_dataset(str(tmp_path), SPEC)
    path = os.path.join(directory, extra)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"not one of ours")
    with open(os.path.join(directory, "train", "blue_circle", "notes.txt"), "w") as fh:
        fh.write("ImageFolder ignores this")  # no image extension: harmless, left alone
    with pytest.raises(DataError) as info:
        ensure_dataset(str(tmp_path), SPEC)
    message = str(info.value)
    assert "\n" not in message and "did not generate" in message
    assert (extra if extra.endswith(".jpg") else os.path.dirname(extra) + os.sep) in message
    assert os.path.exists(path)  # reported, never deleted


# --- 6. damage ----------------------------------------------------------------------------


def test_a_jpeg_overwritten_with_bytes_of_the_same_size_is_regenerated_alone(tmp_path):
    first = []
    directory = ensure_dataset(str(tmp_path), SPEC, announce=first.append)
    assert first == []  # a first generation repairs nothing
    good = _files(directory)
    victim = sorted(good)[3]
    with open(os.path.join(directory, victim), "wb") as fh:
        fh.write(os.urandom(len(good[victim])))
    calls, progress = _calls()
    said = []
    ensure_dataset(str(tmp_path), SPEC, progress, said.append)
    assert calls == [(1, 1)]
    assert said == [f"{directory}: 1 image(s) missing or damaged: regenerating them"]  # a repair is said
    assert _files(directory) == good and _load_all(directory) == (16, 8)
    ensure_dataset(str(tmp_path), SPEC, progress, said.append)
    assert len(said) == 1  # nothing to repair, nothing said


def test_a_torn_manifest_is_rebuilt_and_the_size_is_never_a_made_up_zero(tmp_path):
    directory = ensure_dataset(str(tmp_path), SPEC)
    path = os.path.join(directory, "manifest.json")
    with open(path) as fh:
        whole = json.load(fh)
    total = sum(len(data) for data in _files(directory).values())
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    assert dataset_bytes(directory) == total  # from the files, when the manifest cannot say
    calls, progress = _calls()
    said = []
    ensure_dataset(str(tmp_path), SPEC, progress, said.append)
    assert calls == []  # every image decodes as expected: none is drawn again
    assert said == [f"{directory}: manifest.json is unreadable (torn?): every image is intact; rebuilding the manifest"]
    with open(path) as fh:
        assert json.load(fh) == whole
    assert dataset_bytes(directory) == total
    os.unlink(path)
    assert dataset_bytes(directory) == total


def test_a_format_2_manifest_is_upgraded_and_damage_behind_it_repaired(tmp_path):
    directory = ensure_dataset(str(tmp_path), SPEC)
    path = os.path.join(directory, "manifest.json")
    with open(path) as fh:
        manifest = json.load(fh)
    good = _files(directory)
    older = {k: v for k, v in manifest.items() if k != "sha256"}
    older["format"] = 2
    with open(path, "w") as fh:
        json.dump(older, fh)
    victim = sorted(good)[-1]
    with open(os.path.join(directory, victim), "wb") as fh:
        fh.write(os.urandom(len(good[victim])))  # same size: format 2 alone would keep it
    stamps = {rel: os.stat(os.path.join(directory, rel)).st_mtime_ns for rel in good}
    calls, progress = _calls()
    ensure_dataset(str(tmp_path), SPEC, progress)
    assert calls == [(1, 1)]
    assert _files(directory) == good
    assert {rel for rel in good if os.stat(os.path.join(directory, rel)).st_mtime_ns != stamps[rel]} == {victim}
    with open(path) as fh:
        upgraded = json.load(fh)
    assert upgraded["format"] == FORMAT_VERSION == 3 and upgraded == manifest


def test_the_manifest_records_a_content_hash_per_file(tmp_path):
    directory = ensure_dataset(str(tmp_path), SPEC)
    with open(os.path.join(directory, "manifest.json")) as fh:
        manifest = json.load(fh)
    files = _files(directory)
    assert manifest["files"] == {rel: len(data) for rel, data in files.items()}
    assert manifest["sha256"] == {rel: integrity.digest(data) for rel, data in files.items()}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "format": st.sampled_from([1, 2, 3, 4, "3", None]),
        "spec": st.just({"n_train": 16, "n_val": 8, "image_size": 24, "seed": 3}) | json_values,
        "classes": json_values,
        "files": st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=4)) | json_values,
        "sha256": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers()) | json_values,
    },
)


@given(manifest=json_values | manifest_like)
def test_any_manifest_content_reads_as_sizes_and_hashes_or_nothing(manifest):
    expected = {"format": 3, "spec": {"n_train": 16, "n_val": 8, "image_size": 24, "seed": 3}}
    sizes, hashes, redraw = integrity.recorded(manifest, expected)
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in sizes.items())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items())
    assert isinstance(redraw, bool)
    if redraw or not isinstance(manifest, dict) or manifest.get("format") != 3:
        assert hashes == {}
