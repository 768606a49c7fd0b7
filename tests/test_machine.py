"""Machine facts from fake /proc and /sys trees, and against findmnt on this machine."""

import os
import re
import shutil
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.measure import machine


def _tree(tmp_path, files):
    for rel, content in files.items():
        path = tmp_path / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(tmp_path)


def test_jetson_is_recognised_by_its_release_file_and_named_by_its_device_tree(tmp_path):
    root = _tree(
        tmp_path,
        {
            "/etc/nv_tegra_release": "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n",
            "/proc/device-tree/model": b"NVIDIA Jetson Xavier NX Developer Kit\x00",
        },
    )
    assert machine.detect_platform(root) == "jetson"
    assert machine.board_model(root) == "NVIDIA Jetson Xavier NX Developer Kit"
    assert machine.device_id(root=root, hostname="lab-nx1") == "nvidia-jetson-xavier-nx-developer-kit-lab-nx1"
    assert machine.jetson_facts(root)["l4t"] == "35.4.1"


def test_raspberry_pi_and_x86_names(tmp_path):
    pi = _tree(tmp_path / "pi", {"/proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00"})
    assert machine.detect_platform(pi) == "cpu"
    assert machine.device_id(root=pi, hostname="pi5") == "raspberry-pi-5-model-b-rev-1.0-pi5"
    pc = _tree(
        tmp_path / "pc",
        {"/sys/class/dmi/id/product_name": "ThinkPad X1 Carbon Gen 9\n", "/sys/class/dmi/id/sys_vendor": "LENOVO\n"},
    )
    assert machine.board_model(pc) == "LENOVO ThinkPad X1 Carbon Gen 9"


def test_placeholder_dmi_names_fall_back_to_the_cpu_model(tmp_path):
    root = _tree(
        tmp_path,
        {
            "/sys/class/dmi/id/product_name": "To Be Filled By O.E.M.\n",
            "/proc/cpuinfo": "processor\t: 0\nmodel name\t: AMD Ryzen 7 5800U with Radeon Graphics\n",
        },
    )
    assert machine.board_model(root) is None
    assert machine.device_id(root=root, hostname="box") == "amd-ryzen-7-5800u-with-radeon-graphics-box"


def test_override_is_sanitised_and_cuda_is_detected_from_the_driver(tmp_path):
    assert machine.device_id("My Orin / 15W!") == "my-orin-15w"
    root = _tree(tmp_path, {"/proc/driver/nvidia/gpus/0000:01:00.0/information": "Model: NVIDIA RTX A2000\n"})
    assert machine.detect_platform(root) == "cuda"


def _safe_component(name):
    """One path component that every file system takes, and that means no other place."""
    assert name and name not in (".", "..") and os.path.basename(name) == name == os.path.normpath(name)
    assert not name.startswith(("-", ".")) and not name.endswith(("-", "."))
    assert not set(name) & {"/", "\\", "\0", ":", "*", "?", '"', "<", ">", "|", " "}
    assert all(c.isalnum() or c in "._-" or unicodedata.category(c).startswith("M") for c in name), ascii(name)
    assert unicodedata.is_normalized("NFC", name)


@given(st.text())
def test_sanitised_names_are_safe_folder_names(text):
    name = machine.sanitise(text)
    _safe_component(name)
    assert machine.sanitise(name) == name


def _letters_and_digits(text):
    """What sanitise keeps apart: the letters and digits of the lower-cased NFC name ("(r)" and "(tm)" dropped)."""
    text = unicodedata.normalize("NFC", re.sub(r"\(r\)|\(tm\)", "", unicodedata.normalize("NFC", text).lower()))
    return [c for c in text if c.isalnum()]


@given(st.text())
def test_a_folder_name_keeps_every_letter_and_digit_in_order(text):
    """Whatever the script: 实验室板1 used to become "1", an all-CJK name "unknown", Röd "r-d"."""
    name = machine.sanitise(text)
    assert [c for c in name if c.isalnum()] == (_letters_and_digits(text) or list("unknown"))


NAME_CHARS = st.characters(codec="utf-8") | st.sampled_from("实验室板ÅåÄäÖöRr1２٣ीनम्स -_./\\()")


@given(st.text(NAME_CHARS), st.text(NAME_CHARS), st.integers(0, 30))
def test_two_names_share_a_folder_only_if_they_differ_in_case_spacing_or_punctuation(a, b, cut):
    """Precisely: for two names that each hold a letter or digit (as --device-name requires), sanitise(a) ==
    sanitise(b) implies that, lower-cased and NFC-normalised, they hold the same letters and digits in the same
    order. So two names differing in a letter or digit by more than case or composition never share a folder,
    and never a history. b is also drawn as a changed in one place: inserted, or replacing a character."""
    for other in (b, a[:cut] + b + a[cut:], a[:cut] + b + a[cut + 1 :]):
        mine, theirs = _letters_and_digits(a), _letters_and_digits(other)
        if mine and theirs and mine != theirs:
            assert machine.sanitise(a) != machine.sanitise(other), (a, other)


def test_names_in_any_script_keep_their_own_folder():
    pairs = {
        "实验室板1": "实验室板1",
        "实验室板2": "实验室板2",
        "实验室": "实验室",
        "Röd": "röd",
        "Ro\u0308d": "röd",  # decomposed: the same folder as composed
        "नमस्ते": "नमस्ते",  # vowel signs and virama stay with their letters
        "Лаб Плата": "лаб-плата",
        "My Orin / 15W!": "my-orin-15w",
        "Intel(R) Core(TM) i7": "intel-core-i7",
        "\udcffab": "ab",  # an undecodable byte of the command line (surrogateescape)
    }
    assert {name: machine.sanitise(name) for name in pairs} == pairs


@pytest.mark.parametrize(
    "name, error",
    [
        ("", "--device-name '': an empty name (an unset variable?)"),
        ("..", "--device-name '..': no letter or digit to name its results folder by"),
        ("/ !", "--device-name '/ !': no letter or digit"),
        ("x" * 300, f"--device-name '{'x' * 40}...': 300 bytes as a folder name, at most 128"),
        ("实" * 43, "': 129 bytes as a folder name, at most 128"),
    ],
    ids=["empty", "dots", "punctuation", "300-ascii", "129-bytes-cjk"],
)
def test_a_device_name_that_cannot_name_a_folder_is_refused_naming_the_option(name, error):
    """A 300-character name used to be refused by --save-results ("File name too long"), naming the wrong option."""
    from bench_support.errors import UserError

    with pytest.raises(UserError) as refused:
        machine.device_name_option(name)
    assert error in str(refused.value) and "\n" not in str(refused.value)
    assert machine.device_name_option("实" * 42) == "实" * 42


@given(st.text(NAME_CHARS, min_size=1))
def test_an_accepted_device_name_makes_a_folder_of_its_own(tmp_path_factory, name):
    from bench_support.errors import UserError

    try:
        machine.device_name_option(name)
    except UserError:
        return
    folder = machine.device_id(name)
    _safe_component(folder)
    assert len(folder.encode()) <= machine.DEVICE_ID_MOST_BYTES
    os.makedirs(os.path.join(tmp_path_factory.getbasetemp(), "made", folder), exist_ok=True)


def test_a_long_model_and_hostname_are_cut_but_stay_apart(tmp_path):
    root = _tree(tmp_path, {"/proc/device-tree/model": "实验室板 " * 30})
    one, two = (machine.device_id(root=root, hostname=h) for h in ("host-a", "host-b"))
    assert one != two and one.startswith("实验室板-实验室板")
    for folder in (one, two):
        _safe_component(folder)
        assert len(folder.encode()) <= machine.DEVICE_ID_MOST_BYTES


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
40 27 179:2 / /media/sd\\040card rw,relatime - ext4 /dev/mmcblk0p2 rw
41 27 259:1 / /data rw,relatime - xfs /dev/nvme0n1p1 rw
42 41 0:50 / /data/scratch rw - tmpfs tmpfs rw
"""


def test_filesystem_is_the_longest_matching_mount(tmp_path):
    root = _tree(tmp_path, {"/proc/self/mountinfo": MOUNTINFO})
    assert machine.filesystem_of("/data/x/y", root)["fs_type"] == "xfs"
    assert machine.filesystem_of("/data/scratch/f", root)["fs_type"] == "tmpfs"
    assert machine.filesystem_of("/datasets", root)["fs_type"] == "ext4"  # a prefix of /data is not inside it
    sd = machine.filesystem_of("/media/sd card/train", root)
    assert sd == {"fs_type": "ext4", "mount_point": "/media/sd card", "source": "/dev/mmcblk0p2"}


@pytest.mark.skipif(not shutil.which("findmnt"), reason="findmnt (util-linux) not installed")
@pytest.mark.parametrize("path", ["/", "/dev/shm", os.getcwd()])
def test_filesystem_type_agrees_with_findmnt(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    expected = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "--target", path], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert machine.filesystem_of(path)["fs_type"] == expected


def test_only_stable_facts_are_compared():
    saved = {"cpu": {"model": "X", "governor": "performance", "freq_cur_mhz": 1200}, "memory": {"total_mb": 7000}}
    drifted = {"cpu": {"model": "X", "governor": "performance", "freq_cur_mhz": 2100}, "memory": {"total_mb": 7000}}
    assert machine.stable_differences(drifted, saved) == []
    changed = {"cpu": {"model": "X", "governor": "schedutil", "freq_cur_mhz": 1200}, "memory": {"total_mb": 7000}}
    assert machine.stable_differences(changed, saved) == ["cpu.governor: 'performance' -> 'schedutil'"]


def test_collect_on_this_machine_has_the_core_families():
    info = machine.collect({"data_dir": os.getcwd()})
    assert {"cpu", "memory", "system", "threads", "torch", "filesystems"} <= set(info)
    assert info["cpu"]["logical_cores"] == os.cpu_count()
    assert info["torch"]["build"] in ("cpu", "cuda")
    assert info["threads"]["torch_num_threads"] >= 1


def test_torchvision_version_is_read_from_its_files_without_importing_it():
    # A fresh interpreter: this one may have imported torchvision already. The version recorded without the import
    # is the one the import reports (with its build tag, which the package metadata drops).
    code = (
        "import sys; from bench_support.measure import machine; f = machine.torch_facts(); "
        "print('imported' if 'torchvision' in sys.modules else 'not-imported', f.get('torchvision')); "
        "import torchvision; print(torchvision.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.splitlines()
    assert first == f"not-imported {second}", out.stdout
