"""Every path-valued option works written ``--opt value`` and ``--opt=value``, the path existing or not.

pytest chooses its rootdir and ini file before any installed plugin has registered its options, so in
``--data-dir /existing/dir`` the folder counts as a test path (docs/architecture.md, Upstream): the plugin must
put the project's rootdir, pytest.ini, testpaths and addopts back. A scratch project shows it: its pytest.ini
points at bench/ and a stray test sits beside it, collected only if the ini was lost.
"""

import os
import subprocess
import sys

import pytest

PATH_OPTIONS = [
    # (option, value from a fresh existing folder, whether the folder must exist beforehand)
    ("--data-dir", lambda d: d, True),
    ("--save-results", lambda d: d, True),
    ("--save-results", lambda d: os.path.join(d, "new"), False),
    ("--data-real", lambda d: d, True),
    ("--ckpt-dir", lambda d: f"usb={d}", True),
    ("--data-root", lambda d: f"sd={d}", True),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = bench\naddopts = -p no:cacheprovider\n")
    (root / "bench").mkdir()
    (root / "bench" / "test_a.py").write_text("def test_a(benchmark):\n    benchmark(sum, range(10))\n")
    (root / "stray").mkdir()
    (root / "stray" / "test_stray.py").write_text("def test_stray():\n    pass\n")
    return root


def _collect(project, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=project, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("form", ["space", "equals"])
@pytest.mark.parametrize(
    "option,value,exists", PATH_OPTIONS, ids=[f"{o}-{'existing' if e else 'new'}" for o, _, e in PATH_OPTIONS]
)
def test_path_option_both_forms(project, tmp_path, option, value, exists, form):
    folder = tmp_path / "outside"
    folder.mkdir()
    if option == "--data-real":  # a photo folder named on purpose must hold something
        (folder / "orange_square_01.jpg").write_bytes(b"x")
    given = value(str(folder))
    assert os.path.exists(given) is exists or "=" in given
    args = [option, given] if form == "space" else [f"{option}={given}"]
    result = _collect(project, *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "bench/test_a.py::test_a" in result.stdout
    assert "stray" not in result.stdout, "pytest.ini was not read: its testpaths were lost"


def test_the_option_value_reaches_the_suite(project, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "--data-dir", str(data), "--save-results", str(tmp_path)],
        cwd=project, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"rootdir: {project}" in result.stdout
    assert f"edge-bench: data in {data}" in result.stdout
    assert f"edge-bench: results saved under {tmp_path}{os.sep}" in result.stdout


def test_an_explicit_rootdir_is_obeyed(project, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    result = _collect(project, "--rootdir", str(project), "-c", str(project / "pytest.ini"), "--data-dir", str(folder))
    assert result.returncode == 0 and "stray" not in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_every_option_taking_a_path_is_realigned():
    """PATH_OPTIONS (what realign_rootdir watches) holds every option of options.py whose value is a path."""
    import ast

    from bench_support.plugin import options

    tree = ast.parse(open(options.__file__).read())
    pathy = set()
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "add"):
        metavar = next((k.value.value for k in call.keywords if k.arg == "metavar"), None)
        if metavar in ("DIR", "NAME=PATH"):
            pathy.add(call.args[0].value)
    assert pathy and pathy == set(options.PATH_OPTIONS)


@pytest.mark.parametrize(
    "args", [["--save-results="], ["--save-results", ""], ["--data-dir="], ["--data-real", " "]], ids=repr
)
def test_an_empty_path_is_refused_in_one_line_not_taken_for_no_option_or_this_folder(project, args):
    """``--save-results=$DIR`` with DIR unset used to save nothing without a word."""
    result = _collect(project, *args)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "an empty path (an unset variable?)" in errors[0], result.stderr
    assert errors[0].startswith(f"ERROR: {args[0].rstrip('=')} ''"), errors[0]


def test_a_data_seed_beyond_what_the_generators_take_is_refused_at_parse_time():
    """A seed of 2**64 passed the parser and failed deep in the continual scenario ("Overflow when unpacking long
    long"), naming neither the option nor the limit."""
    import argparse

    from bench_support.plugin.options import SEED_MOST
    from bench_support.plugin.parsers import at_least

    parse = at_least(0, "--data-seed", most=SEED_MOST)
    assert parse(str(SEED_MOST)) == SEED_MOST and parse("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=r"--data-seed 99999999999999999999: at most 2147483647"):
        parse("99999999999999999999")


def test_a_json_path_that_cannot_be_written_is_refused_before_the_run_and_a_new_folder_is_made(project, tmp_path):
    """--benchmark-json is written after the run: an empty value (a folder, ".") or a place that cannot be written
    used to cost the whole run first."""
    for given in ("--benchmark-json=", f"--benchmark-json={tmp_path}", "--benchmark-json=/proc/nope/run.json"):
        result = _collect(project, given)
        assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("ERROR: --benchmark-json "), result.stderr
    out = tmp_path / "new" / "deeper" / "run.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_DATA_DIR")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--profile", "smoke", f"--benchmark-json={out}"],
                          cwd=project, capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0 and out.is_file(), done.stdout[-2000:] + done.stderr[-2000:]


def test_a_misspelt_platform_is_refused_in_one_line_not_run_as_another(project):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_DATA_DIR")}
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q"], cwd=project, capture_output=True,
                            text=True, timeout=120, env={**env, "BENCH_PLATFORM": "gpu"})  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    expected = "ERROR: $BENCH_PLATFORM 'gpu': expected one of cpu, cuda, jetson or auto"
    assert result.returncode == 4 and errors == [expected], result.stderr


def test_one_folder_under_two_names_is_refused_in_one_line(project, tmp_path):
    result = _collect(project, "--ckpt-dir", f"a={tmp_path}", "--ckpt-dir", f"b={tmp_path}{os.sep}")
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 4 and errors == [f"ERROR: --ckpt-dir b={tmp_path}: that folder is given already, as a"]


#: Every whole-number option and its upper bound (bench_support/plugin/options.py says why each is what it is).
WHOLE_NUMBER_LIMITS = {
    "--train-images": 1_000_000,
    "--val-images": 1_000_000,
    "--data-seed": 2**31 - 1,
    "--trials": 1000,
    "--trial-seed": 2**32 - 1,
    "--crash-trials": 1000,
    "--cl-epochs": 1000,
    "--cl-batch": 1024,
    "--cl-image-size": 1024,
    "--cl-workers": 64,
    "--cl-pretrain-images": 262_144,
    "--dist-nnodes": 256,
    "--dist-node-rank": 255,
}


def _run_code_under_test(project, *args):
    """A pytest run of the scratch project with the plugin of the code under test, also where the installed one
    (editable) is another checkout's."""
    import bench_support

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_DATA_DIR")}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(bench_support.__file__))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=project, capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip


def _parse(*args):
    from _pytest.config.argparsing import Parser

    from bench_support.plugin.options import pytest_addoption

    parser = Parser(_ispytest=True)  # the options as pytest parses them, without a pytest run
    pytest_addoption(parser)
    return parser.parse(list(args))


@pytest.mark.parametrize("form", ["space", "equals"])
@pytest.mark.parametrize("option,most", WHOLE_NUMBER_LIMITS.items(), ids=list(WHOLE_NUMBER_LIMITS))
def test_a_whole_number_beyond_its_limit_is_refused_in_one_line_naming_option_value_and_limit(option, most, form):
    """--cl-image-size 100000 went on to ask numpy for 149 GiB (a traceback, and empty dataset folders left behind);
    --val-images 9999999999999999999999 hung building its list of files. Each bound is refused at parse time."""

    def written(value):
        return [option, value] if form == "space" else [f"{option}={value}"]

    dest = option.lstrip("-").replace("-", "_")
    assert getattr(_parse(*written(str(most))), dest) == most
    for value, shown in [
        (str(most + 1), str(most + 1)),
        ("9999999999999999999999", "9999999999999999999999"),
        ("9" * 5000, "999999999999... (5000 characters)"),  # more digits than Python's int() reads
    ]:
        with pytest.raises(pytest.UsageError) as refused:
            _parse(*written(value))
        assert str(refused.value) == f"{option} {shown}: at most {most}"
    for value in ("-" + "9" * 5000, "-" + "9" * 100, "x" * 5000):  # below the least, or no number: one short line
        with pytest.raises(pytest.UsageError) as refused:
            _parse(*written(value))
        assert len(str(refused.value)) < 200 and "... (" in str(refused.value)
        assert ("need at least" if value[0] == "-" else "expected a whole number") in str(refused.value)


def test_every_whole_number_option_has_an_upper_bound():
    """A new whole-number option (at_least) must say its most, and be listed above."""
    import ast

    from bench_support.plugin import options

    tree = ast.parse(open(options.__file__).read())
    parsers = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "at_least"]
    named = {call.args[1].value for call in parsers}
    assert named == set(WHOLE_NUMBER_LIMITS)
    unbounded = [call.args[1].value for call in parsers if not any(k.arg == "most" for k in call.keywords)]
    assert not unbounded


@pytest.mark.parametrize(
    "args", [["--cl-image-size", "100000"], ["--val-images=9999999999999999999999"]], ids=["image-size", "val-images"]
)
def test_the_reported_runaway_sizes_stop_before_anything_is_made(project, tmp_path, args):
    data = tmp_path / "data"
    data.mkdir()
    result = _run_code_under_test(project, "--data-dir", str(data), *args)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 4 and len(errors) == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert errors[0] in ("ERROR: --cl-image-size 100000: at most 1024",
                         "ERROR: --val-images 9999999999999999999999: at most 1000000")  # fmt: skip
    assert not os.listdir(data)


def test_boards_named_in_any_script_keep_their_own_results_and_history(project, tmp_path):
    """实验室板1 used to become the folder "1", so a board named 研究板1 shared its folder and its history (and any
    all-CJK name was "unknown"); Röd became "r-d". Each name is its own folder and device now."""
    from bench_support.report.runs import by_device, load_runs

    results = tmp_path / "results"
    for written in (["--device-name=实验室板1"], ["--device-name", "研究板1"], ["--device-name", "Ro\u0308d"]):
        args = [
            "--profile",
            "smoke",
            "--power-idle-s",
            "0",
            "--data-dir",
            str(tmp_path),
            "--save-results",
            str(results),
        ]
        done = _run_code_under_test(project, *args, *written)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    devices = sorted(["实验室板1", "研究板1", "röd"])
    assert sorted(os.listdir(results)) == devices
    runs, problems = load_runs(str(results))
    assert not problems and sorted(by_device(runs)) == devices


@pytest.mark.parametrize("form", ["space", "equals"])
def test_a_device_name_too_long_for_a_folder_is_refused_naming_device_name(project, tmp_path, form):
    """It used to be refused by --save-results, as "File name too long"."""
    name = "板" * 100
    written = ["--device-name", name] if form == "space" else [f"--device-name={name}"]
    result = _run_code_under_test(project, "--save-results", str(tmp_path / "res"), *written)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    expected = f"ERROR: --device-name '{'板' * 40}...': 300 bytes as a folder name, at most 128"
    assert result.returncode == 4 and errors == [expected], result.stdout[-2000:] + result.stderr[-2000:]
    assert not os.path.exists(tmp_path / "res")
