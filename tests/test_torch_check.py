"""First contact: a missing or mismatched torch is one line that names the remedy for this board."""

import subprocess
import sys
import types

import pytest

from bench_support import torch_check
from bench_support.measure.jetson import jetpack_of, l4t_release

ORIN_NX_RELEASE = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13\n"
XAVIER_RELEASE = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1\n"


def _root(tmp_path, release):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(release)
    return str(tmp_path)


def _importer(torch=None, torchvision=None, torch_error=None, vision_error=None):
    def load(name):
        error = torch_error if name == "torch" else vision_error
        if error is not None:
            raise error
        return torch if name == "torch" else torchvision

    return load


def _torch(version, cuda, gpu=True):
    return types.SimpleNamespace(
        __version__=version,
        version=types.SimpleNamespace(cuda=cuda),
        cuda=types.SimpleNamespace(is_available=lambda: gpu),
    )


@pytest.mark.parametrize(
    "l4t, jetpack",
    [("36.4.0", "6.1"), ("36.3.0", "6.0"), ("35.4.1", "5.1.2"), ("32.7.4", "4.6.4"), ("36.9.9", "6.x"), ("99.1", None)],
)
def test_jetpack_release_from_l4t(l4t, jetpack):
    assert jetpack_of(l4t) == jetpack


def test_the_l4t_release_is_read_from_the_release_file(tmp_path):
    assert l4t_release(_root(tmp_path, ORIN_NX_RELEASE)) == "36.4.0"


def test_missing_torch_on_a_jetson_names_its_jetpack(tmp_path):
    missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    line = torch_check.problem("jetson", _root(tmp_path, ORIN_NX_RELEASE), _importer(torch_error=missing))
    assert line.startswith("torch does not import on this Jetson: install NVIDIA's torch wheel for JetPack 6.1")
    assert "(L4T R36.4.0)" in line and torch_check.NVIDIA_GUIDE in line and "\n" not in line


def test_a_broken_jetson_wheel_says_what_failed(tmp_path):
    broken = OSError("libcudnn.so.8: cannot open shared object file: No such file or directory")
    line = torch_check.problem("jetson", _root(tmp_path, XAVIER_RELEASE), _importer(torch_error=broken))
    assert "torch fails to import on this Jetson (libcudnn.so.8" in line and "JetPack 5.1.2 (L4T R35.4.1)" in line


@pytest.mark.parametrize("platform", ["jetson", "cuda"])
def test_a_cpu_only_build_on_a_gpu_board_is_refused(tmp_path, platform):
    line = torch_check.problem(platform, _root(tmp_path, ORIN_NX_RELEASE), _importer(torch=_torch("2.5.0", None)))
    assert "torch 2.5.0 is a CPU-only build" in line


def test_a_cpu_only_build_is_fine_on_a_cpu_machine(tmp_path):
    assert torch_check.problem("cpu", str(tmp_path), _importer(torch=_torch("2.13.0+cpu", None), torchvision=1)) is None


def test_a_torchvision_built_for_another_torch_names_the_series_to_install(tmp_path):
    mismatch = RuntimeError("operator torchvision::nms does not exist")
    importer = _importer(torch=_torch("2.13.0+cpu", None), vision_error=mismatch)
    line = torch_check.problem("cpu", str(tmp_path), importer)
    assert line == (
        "torchvision does not match torch 2.13.0+cpu (operator torchvision::nms does not exist): "
        "install torchvision 0.28.x, the series for torch 2.13.0+cpu"
    )


def test_a_missing_torchvision_names_the_series_to_install(tmp_path):
    missing = ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
    importer = _importer(torch=_torch("2.14.1", "12.8"), vision_error=missing)
    assert "install torchvision 0.29.x" in torch_check.problem("cuda", str(tmp_path), importer)


def test_a_cuda_build_that_sees_no_gpu_is_refused_unless_the_user_says_cpu_is_fine(tmp_path, monkeypatch):
    importer = _importer(torch=_torch("2.14.1", "13.0", gpu=False), torchvision=1)
    line = torch_check.problem("cuda", str(tmp_path), importer)
    assert line.startswith("torch 2.14.1 (CUDA 13.0) sees no usable GPU on this GPU machine: the driver is missing")
    monkeypatch.setenv("BENCH_REQUIRE_GPU", "0")
    assert torch_check.problem("cuda", str(tmp_path), importer) is None
    assert torch_check.problem("jetson", str(tmp_path), _importer(torch=_torch("2.5.0", None), torchvision=1)) is None


def test_on_a_jetson_torchvision_is_built_against_nvidias_torch_not_taken_from_the_registry(tmp_path):
    missing = ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
    importer = _importer(torch=_torch("2.5.0a0+872d972e41.nv24.08", "12.6"), vision_error=missing)
    line = torch_check.problem("jetson", _root(tmp_path, ORIN_NX_RELEASE), importer)
    assert line.startswith("torchvision is not installed on this Jetson: build torchvision 0.20 from source")
    assert "--no-deps" in line and "JetPack 6.1 (L4T R36.4.0)" in line


def test_an_exception_with_no_message_is_named_by_its_type(tmp_path):
    line = torch_check.problem("cpu", str(tmp_path), _importer(torch_error=RuntimeError()))
    assert line.startswith("torch fails to import here (RuntimeError): ")
    blank_first = ImportError("\n\nIMPORTANT: PLEASE READ THIS FOR ADVICE\n")
    line = torch_check.problem("cpu", str(tmp_path), _importer(torch_error=blank_first))
    assert line.startswith("torch does not import here (IMPORTANT: PLEASE READ THIS FOR ADVICE): ")


def test_a_release_missing_from_the_table_is_named_by_its_l4t_release(tmp_path):
    root = _root(tmp_path, "# R28 (release), REVISION: 2.1, GCID: 11272647, BOARD: t186ref, EABI: aarch64\n")
    missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    line = torch_check.problem("jetson", root, _importer(torch_error=missing))
    assert "install NVIDIA's torch wheel for L4T R28.2.1 into" in line


def test_the_command_prints_one_line_and_exits_2_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; "  # importing a None entry raises ImportError(name='torch')
        "from bench_support.torch_check import main; sys.exit(main(['cpu']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("edge-bench: torch does not import here")


def test_the_real_torch_here_passes():
    assert torch_check.problem("cpu") is None


def test_pytest_on_a_jetson_without_torch_stops_with_one_line_before_parsing_the_suites_options(tmp_path):
    """As on a freshly flashed JetPack: no torch in the Python that runs pytest."""
    from conftest import run_pytest

    shadow = tmp_path / "shadow" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    root = _root(tmp_path, ORIN_NX_RELEASE)
    env = {"PYTHONPATH": str(tmp_path / "shadow"), "BENCH_PLATFORM": "jetson", "BENCH_SYSTEM_ROOT": root}
    result = run_pytest("benchmarks", "--profile", "smoke", env=env)
    assert result.returncode == 4  # pytest's usage error
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(
        "ERROR: edge-bench: torch does not import on this Jetson: install NVIDIA's torch wheel for JetPack 6.1"
    ), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_the_conftest_guard_looks_for_torchvision_without_importing_it():
    """Importing torchvision costs seconds at every pytest start; the guard only checks it is there."""
    code = (
        "import sys; from bench_support.torch_check import problem; "
        "print(problem('cpu', import_torchvision=False), 'torchvision' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["None", "False"], result.stderr[-2000:]
