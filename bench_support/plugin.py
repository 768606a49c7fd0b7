"""The pytest plugin: options, per-device result storage, machine facts, fixtures.

Loaded by the project's conftest.py, so it also applies to ``pytest-benchmark compare``.
"""

from __future__ import annotations

import atexit
import difflib
import glob
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

from . import cl_outputs, cl_setup, jetson_setup, machine, netguard, report, summary
from .cl_worker import WorkerError
from .data import DataError, DatasetSpec, cifar10, dataset_bytes, ensure_dataset, has_cifar10, image_folders
from .harness import Harness
from .power import DEFAULT_INTERVAL_S, PowerWindow, measure_idle_w
from .power_sources import BACKENDS, open_source
from .profiles import PROFILES, Profile

SUITE_VERSION = "0.1.0"
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


@dataclass
class SuiteState:
    profile: Profile
    data_dir: str
    device_id: str
    platform: str
    cifar_root: Optional[str]
    results_dir: Optional[str]
    ckpt_dirs: Dict[str, str]
    data_roots: Dict[str, str]  # name -> directory holding the datasets; "data-dir" is --data-dir
    continual: Dict[str, Any] = field(default_factory=dict)  # settings, then results and outputs


STATE = pytest.StashKey[SuiteState]()
SESSION = pytest.StashKey[pytest.Session]()
POWER = pytest.StashKey["PowerSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    _one_line_usage_errors(parser)
    group = parser.getgroup("edge-bench", "edge training benchmarks")
    group.addoption(
        "--profile",
        choices=sorted(PROFILES),
        default=os.environ.get("BENCH_PROFILE", "quick"),
        help="which grid and sizes to run: "
        + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())
        + " (default: quick, or $BENCH_PROFILE)",
    )
    group.addoption(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="existing, writable directory for the generated datasets (default: ./data, or $BENCH_DATA_DIR)",
    )
    group.addoption(
        "--train-images",
        metavar="N",
        type=int,
        default=None,
        help="generated training images (default: the profile's)",
    )
    group.addoption(
        "--val-images",
        metavar="N",
        type=int,
        default=None,
        help="generated held-out images (default: the profile's)",
    )
    group.addoption("--data-seed", metavar="N", type=int, default=0, help="seed of the generated dataset (default 0)")
    group.addoption(
        "--device-name",
        metavar="NAME",
        default=None,
        help="name of this device's results folder (default: board or CPU model plus hostname)",
    )
    group.addoption(
        "--cifar-root",
        metavar="DIR",
        default=None,
        help="train on a local CIFAR-10 copy (DIR/cifar-10-batches-py) instead of generated images; never downloads",
    )
    group.addoption(
        "--save-results",
        metavar="DIR",
        default=None,
        help="save this run under DIR/<device-id>/ and compare it with this device's previous run there",
    )
    group.addoption(
        "--data-root",
        metavar="NAME=PATH",
        action="append",
        default=[],
        help="also place the dataset on PATH (an SD card, an NVMe, a USB disk), named NAME, and run the page-cache "
        "and training benchmarks on it; repeatable",
    )
    group.addoption(
        "--cache-drop",
        choices=("auto", "drop_caches", "fadvise"),
        default="auto",
        help="how to make data cold: fadvise (per file, no privilege; what auto picks) or drop_caches (root; "
        "the whole system, as the Jetson study: also evicts library code the next round reads back)",
    )
    group.addoption(
        "--thread-policy",
        choices=("default", "reserve"),
        default="default",
        help="torch threads of the training process while DataLoader workers run: default (torch's own: all "
        "cores) or reserve (cores minus workers)",
    )
    group.addoption(
        "--ckpt-dir",
        metavar="NAME=PATH",
        action="append",
        default=[],
        help="also benchmark checkpoint writes into PATH (an SD card, an NVMe...), named NAME; repeatable",
    )
    group.addoption(
        "--crash-trials",
        metavar="N",
        type=int,
        default=0,
        help="run the checkpoint crash-consistency check with N kill trials (default 0: off)",
    )
    group.addoption(
        "--power-backend",
        choices=BACKENDS,
        default="auto",
        help="where power comes from (auto tries jtop, ina3221, tegrastats, rapl, nvml in that order)",
    )
    group.addoption(
        "--power-interval",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help=f"power sampling interval (default {DEFAULT_INTERVAL_S}; jtop uses at least 0.5)",
    )
    group.addoption(
        "--power-idle-s",
        metavar="SECONDS",
        type=float,
        default=3.0,
        help="idle power is measured this long before the first benchmark (0: not measured)",
    )
    group.addoption(
        "--jetson-power-mode",
        metavar="MODE",
        default=None,
        help="Jetson only, opt-in: switch to this nvpmodel mode (e.g. MAXN) through jtop; restored afterwards",
    )
    group.addoption(
        "--jetson-clocks",
        action="store_true",
        default=False,
        help="Jetson only, opt-in: turn jetson_clocks on (DVFS off) through jtop; restored afterwards",
    )
    cl = parser.getgroup("edge-bench-continual", "continual learning on your own photos (benchmarks/test_continual.py)")
    cl.addoption(
        "--data-real",
        metavar="DIR",
        default=None,
        help="your photos, named <word>_<word>_<anything>.jpg (class = first two words, e.g. orange_square_01.jpg) "
        "(default: ./data_real; with no photos there, generated stand-in photos are used and the results say so)",
    )
    cl.addoption("--cl-epochs", metavar="N", type=int, default=None, help="fine-tune epochs (default 4; smoke: 1)")
    cl.addoption("--cl-batch", metavar="N", type=int, default=4, help="fine-tune batch size (default 4)")
    cl.addoption("--cl-image-size", metavar="PX", type=int, default=128, help="image size, pixels (default 128)")
    cl.addoption("--cl-workers", metavar="N", type=int, default=0, help="DataLoader workers (default 0)")
    cl.addoption(
        "--cl-model",
        choices=("smallcnn", "mobilenet_v3_small", "resnet18"),
        default="smallcnn",
        help="the vision model (default smallcnn: 0.37 M parameters, global max pooling; "
        "the torchvision ones learn shape far more slowly from synthetic images)",
    )
    cl.addoption(
        "--cl-pretrain-images",
        metavar="N",
        type=int,
        default=None,
        help="synthetic images for the factory pretraining (default: smoke 512, quick 8192, full 16384)",
    )
    cl.addoption(
        "--cl-weights",
        choices=("synthetic", "imagenet"),
        default="synthetic",
        help="start of the factory pretraining: random weights (synthetic, default) or torchvision's ImageNet "
        "weights if they are already in the local torch cache (never downloaded)",
    )
    cl.addoption(
        "--rss-budget-mb",
        metavar="MB",
        type=float,
        default=None,
        help="mark each fine-tune configuration as within or over this peak-RSS budget (the seed aimed at 400)",
    )
    group.addoption(
        "--no-fast-exit",
        action="store_true",
        default=False,
        help="let the interpreter tear torch down at exit "
        "(adds ~190 MB of library pages to an outside max-RSS reading)",
    )
    group.addoption(
        "--allow-network",
        action="store_true",
        default=False,
        help="do not install the guard that makes any network access in this run an error",
    )


def _one_line_usage_errors(parser: pytest.Parser) -> None:
    """Reduce pytest's usage error (usage, error, ini and rootdir lines) to the error line.

    A misspelt option then reads as one line, with the nearest real option suggested.
    Wraps this parser instance only; if pytest's internals change, its own message shows.
    """
    original = getattr(parser, "parse", None)
    if original is None:
        return

    def parse(args, namespace=None):
        try:
            return original(args, namespace=namespace)
        except pytest.UsageError as exc:
            raise pytest.UsageError(_compact_usage(str(exc), parser)) from None

    parser.parse = parse


def _compact_usage(text: str, parser: pytest.Parser) -> str:
    line = next((ln for ln in text.splitlines() if ": error: " in ln), None)
    if line is None:
        return text
    message = line.split(": error: ", 1)[1]
    if message.startswith("unrecognized arguments:"):
        known = list(getattr(getattr(parser, "optparser", None), "_option_string_actions", {}))
        for word in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(word.split("=")[0], known, n=1) if word.startswith("--") else []
            if close:
                message += f" (did you mean {close[0]}?)"
                break
    return message


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(message)


def _writable_dir(option: str, path: str, create: bool) -> str:
    path = os.path.abspath(os.path.expanduser(path))
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise _usage(f"{option} {path}: cannot create it ({exc.strerror})") from None
    if not os.path.isdir(path):
        raise _usage(f"{option} {path}: no such directory")
    try:  # a real write: catches read-only mounts and immutable dirs, which root meets too
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise _usage(f"{option} {path}: directory is not writable ({exc.strerror})") from None
    return path


def _parse_named_dirs(option: str, values, reserved=()) -> Dict[str, str]:
    """``NAME=PATH`` pairs into {name: writable absolute path}."""
    named: Dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise _usage(f"{option} {value}: expected NAME=PATH, e.g. {option} sdcard=/media/sd")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise _usage(f"{option} {value}: NAME may hold letters, digits, '.', '_' and '-' only")
        if name in reserved:
            raise _usage(f"{option} {value}: {name} is a built-in target; choose another NAME")
        if name in named:
            raise _usage(f"{option} {value}: the name {name} is given twice")
        named[name] = _writable_dir(option, path, create=False)
    return named


def _check_cifar(root: str) -> str:
    root = os.path.abspath(os.path.expanduser(root))
    folder = os.path.join(root, "cifar-10-batches-py")
    if not has_cifar10(root):
        raise _usage(f"--cifar-root {root}: no CIFAR-10 there (expected {folder}/; the suite never downloads)")
    missing = [name for name in CIFAR_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise _usage(f"--cifar-root {root}: incomplete CIFAR-10, missing {', '.join(missing)} in {folder}")
    return root


def _continual_settings(config: pytest.Config, profile: Profile, root: str) -> Dict[str, Any]:
    """The continual-learning options, checked; errors are one line."""
    for option, least in (
        ("cl_batch", 1),
        ("cl_image_size", 32),
        ("cl_workers", 0),
        ("cl_epochs", 1),
        ("cl_pretrain_images", 32),
    ):
        value = config.getoption(option)
        if value is not None and value < least:
            raise _usage(f"--{option.replace('_', '-')} {value}: must be at least {least}")
    budget = config.getoption("rss_budget_mb")
    if budget is not None and budget <= 0:
        raise _usage(f"--rss-budget-mb {budget:g}: must be more than 0")
    given = config.getoption("data_real")
    data_real = os.path.abspath(os.path.expanduser(given or os.path.join(root, "data_real")))
    if given and not os.path.isdir(data_real):
        raise _usage(f"--data-real {data_real}: no such directory")
    epochs = config.getoption("cl_epochs") or (1 if profile.name == "smoke" else 4)
    settings = {
        "model": config.getoption("cl_model"),
        "image_size": config.getoption("cl_image_size"),
        "batch": config.getoption("cl_batch"),
        "workers": config.getoption("cl_workers"),
        "epochs": epochs,
        "seed": config.getoption("data_seed"),
        "weights": config.getoption("cl_weights"),
        "rss_budget_mb": budget,
        "data_real": data_real,
        "allow_network": bool(config.getoption("allow_network")),
        "imagenet_path": None,
        "pretrain_images": config.getoption("cl_pretrain_images"),
    }
    if settings["weights"] == "imagenet" and settings["model"] == "smallcnn":
        raise _usage("--cl-weights imagenet: smallcnn has no ImageNet weights; add --cl-model mobilenet_v3_small")
    if settings["weights"] == "imagenet":
        from .continual import imagenet_weights_path

        path, name = imagenet_weights_path(settings["model"])
        if not os.path.isfile(path):
            raise _usage(
                f"--cl-weights imagenet: {name} is not in the local torch cache ({os.path.dirname(path)}); "
                "the suite never downloads: copy it there or use --cl-weights synthetic"
            )
        settings["imagenet_path"] = path
    return settings


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the storage options must be settled before pytest-benchmark reads them.
    root = str(config.rootpath)
    profile = PROFILES[config.getoption("profile")]
    sizes = {"n_train": config.getoption("train_images"), "n_val": config.getoption("val_images")}
    for name, value in sizes.items():
        if value is not None and value < 4:
            option = "--train-images" if name == "n_train" else "--val-images"
            raise _usage(f"{option} {value}: need at least 4 (one image per class)")
    profile = replace(profile, **{k: v for k, v in sizes.items() if v is not None})
    data_opt = config.getoption("data_dir")
    if data_opt:
        data_dir = _writable_dir("--data-dir", data_opt, create=False)
    else:
        data_dir = _writable_dir("data directory", os.environ.get("BENCH_DATA_DIR") or os.path.join(root, "data"), True)
    cifar = config.getoption("cifar_root")
    state = SuiteState(
        profile=profile,
        data_dir=data_dir,
        device_id=machine.device_id(config.getoption("device_name")),
        platform=os.environ.get("BENCH_PLATFORM") or machine.detect_platform(),
        cifar_root=_check_cifar(cifar) if cifar else None,
        results_dir=None,
        ckpt_dirs=_parse_named_dirs("--ckpt-dir", config.getoption("ckpt_dir"), ("project", "shm")),
        data_roots={"data-dir": data_dir},
    )
    for name, path in _parse_named_dirs("--data-root", config.getoption("data_root"), ("data-dir",)).items():
        state.data_roots[name] = os.path.join(path, "edge-bench-data")
    if config.getoption("power_interval") <= 0:
        raise _usage(f"--power-interval {config.getoption('power_interval')}: must be more than 0")
    if config.getoption("jetson_power_mode") or config.getoption("jetson_clocks"):
        try:
            config.add_cleanup(
                jetson_setup.apply(config.getoption("jetson_power_mode"), config.getoption("jetson_clocks"))
            )
        except jetson_setup.SetupError as exc:
            raise _usage(str(exc)) from None
    if config.getoption("crash_trials") < 0:
        raise _usage(f"--crash-trials {config.getoption('crash_trials')}: must be 0 (off) or more")
    state.continual = _continual_settings(config, profile, root)
    config.stash[STATE] = state

    if not config.getoption("allow_network"):
        netguard.install()

    results = config.getoption("save_results")
    if results:
        storage = _writable_dir("--save-results", os.path.join(results, state.device_id), create=True)
        state.results_dir = storage
        _configure_storage(config, storage, profile.name)

    _silence_default_machine_info_comparison(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    ran_benchmarks = bool(getattr(getattr(config, "_benchmarksession", None), "benchmarks", None))
    if session is not None and ran_benchmarks and not config.getoption("no_fast_exit") and _pytest_is_main():
        atexit.register(_exit_without_teardown, int(session.exitstatus))


def _pytest_is_main() -> bool:
    """True when this process is the pytest command itself, not a program embedding it."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in ("pytest", "pytest.__main__", "py.test"):
        return True
    return os.path.basename(sys.argv[0]) in ("pytest", "py.test")


def _exit_without_teardown(status: int) -> None:
    """End the process after every atexit handler, skipping the interpreter's teardown.

    The CUDA build of torch pages ~190 MB of shared-library code into the process
    while its C++ objects are destroyed at exit (RssFile grows; measured here). That
    is after every benchmark, but an outside reading of the process's peak RSS
    (``/usr/bin/time -v``) would include it and disagree with ``rss_peak_mb``.
    """
    atexit.unregister(_exit_without_teardown)
    atexit._run_exitfuncs()  # everyone else's handlers, in their usual order
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION] = session


def _configure_storage(config: pytest.Config, storage: str, run_name: str) -> None:
    """Save into the device's own folder; compare with its previous run if it has one."""
    from pytest_benchmark.utils import get_machine_id

    option = config.option
    option.benchmark_storage = "file://" + storage
    if not option.benchmark_save and not option.benchmark_autosave:
        option.benchmark_save = run_name
    option.benchmark_save_data = True  # per-round data: comparisons need more than a mean
    previous = glob.glob(os.path.join(storage, get_machine_id(), "*.json"))
    if previous and not option.benchmark_compare:
        option.benchmark_compare = True


def _silence_default_machine_info_comparison(config: pytest.Config) -> None:
    """Drop pytest-benchmark's own comparison of machine_info.

    It warns whenever the whole dict differs, which it does at every run (CPU
    frequency, available memory; upstream issue #255). Ours below compares only the
    stable facts and names them. The hook is not firstresult, so the default has to be
    switched off rather than overridden.
    """
    hook = config.pluginmanager.hook.pytest_benchmark_compare_machine_info
    for impl in hook.get_hookimpls():
        if getattr(impl.function, "__module__", "") == "pytest_benchmark.plugin":
            impl.function = lambda *args, **kwargs: None


# --- pytest-benchmark hooks ---------------------------------------------------------------


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: Dict[str, Any]) -> None:
    state = config.stash[STATE]
    paths = {"data_dir": state.data_dir}
    if state.results_dir:
        paths["results_dir"] = state.results_dir
    facts = machine.collect(paths)
    facts["device_id"] = state.device_id
    facts["platform"] = state.platform
    power = config.stash.get(POWER, None)
    if power is not None:
        facts["power"] = {
            "source": getattr(power.source, "label", None),
            "unavailable": power.reason,
            "interval_s": power.interval_s,
            "idle_w": power.idle_w,
            "idle_unavailable": power.idle_reason,
        }
    machine_info["device"] = facts


def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark) -> None:
    saved = compared_benchmark.get("machine_info", {}).get("device", {})
    changes = machine.stable_differences(machine_info.get("device", {}), saved)
    if changes:
        benchmarksession.logger.warning("the compared run was made under different conditions: " + "; ".join(changes))


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: Dict[str, Any]) -> None:
    state = config.stash[STATE]
    for bench in output_json.get("benchmarks", []):
        bench.setdefault("extra_info", {})["validity"] = report.validity(bench, state.profile.name)
    continual = {k: state.continual.get(k) for k in ("outputs", "configs", "photos", "pretraining", "notes")}
    output_json["edge_bench"] = {
        "continual": continual if state.continual.get("configs") else None,
        "fastest_loader": summary.fastest_loader(benchmarks),
        "suite_version": SUITE_VERSION,
        "profile": state.profile.name,
        "device_id": state.device_id,
        "platform": state.platform,
        "data_dir": state.data_dir,
        "cifar_root": state.cifar_root,
    }


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    line = summary.fastest_loader_line(summary.fastest_loader(getattr(session, "benchmarks", None) or []))
    if line:
        terminalreporter.write_line(f"edge-bench: {line}")
    state = config.stash.get(STATE, None)
    continual = state.continual if state else {}
    for line in continual.get("summaries", []):
        terminalreporter.write_line(f"edge-bench: {line}")
    for line in continual.get("notes", []) if continual.get("summaries") else []:
        terminalreporter.write_line(f"edge-bench: {line}")
    outputs = continual.get("outputs") or {}
    if outputs.get("error"):
        terminalreporter.write_line(f"edge-bench: {outputs['error']}")
    elif outputs:
        terminalreporter.write_line(f"edge-bench: continual-learning results: {outputs['csv']}, {outputs['log']}")
        names = ", ".join(os.path.basename(p) for p in outputs["plots"])
        folder = os.path.dirname(outputs["plots"][0])
        terminalreporter.write_line(f"edge-bench: continual-learning plots in {folder}: {names}")


def pytest_report_header(config: pytest.Config):
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    lines = [
        f"edge-bench: device {state.device_id}, platform {state.platform}, profile {state.profile.name}",
        f"edge-bench: data in {state.data_dir}" + (f", CIFAR-10 from {state.cifar_root}" if state.cifar_root else ""),
    ]
    if state.results_dir:
        lines.append(f"edge-bench: results saved under {state.results_dir}")
    return lines


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def suite(pytestconfig: pytest.Config) -> SuiteState:
    return pytestconfig.stash[STATE]


@pytest.fixture(scope="session")
def profile(suite: SuiteState) -> Profile:
    return suite.profile


def live_writer(config: pytest.Config) -> Callable[[str], None]:
    """Writes a line to the terminal during a test, captured output or not (no -s needed)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return write


def _progress_writer(config: pytest.Config, label: str) -> Callable[[int, int], None]:
    write = live_writer(config)
    return lambda done, total: write(f"edge-bench: generating {label}: {done}/{total} images")


@pytest.fixture(scope="session")
def image_datasets(pytestconfig: pytest.Config, suite: SuiteState) -> Callable[..., Tuple[Any, Any, Dict]]:
    """``get(image_size, data_root="data-dir") -> (train, val, info)``, built once per session.

    On every data root the generated dataset is the same, byte for byte (it is a pure
    function of its seed), so results on two storage media compare like with like.
    """
    cache: Dict[Tuple[int, str], Tuple[Any, Any, Dict]] = {}

    def get(image_size: int, data_root: str = "data-dir") -> Tuple[Any, Any, Dict]:
        key = (image_size, data_root)
        if key in cache:
            return cache[key]
        root = suite.data_roots[data_root]
        try:
            if suite.cifar_root:
                if image_size != 32:
                    pytest.skip(f"CIFAR-10 images are 32 px; {image_size} px runs only on generated data")
                if data_root != "data-dir":
                    pytest.skip("--data-root places generated data only; CIFAR-10 is read from --cifar-root")
                train, val = cifar10(suite.cifar_root, image_size)
                info = {"dataset": "cifar10", "num_classes": 10, "dataset_dir": suite.cifar_root}
            else:
                seed = pytestconfig.getoption("data_seed")
                spec = DatasetSpec(suite.profile.n_train, suite.profile.n_val, image_size, seed)
                label = spec.name if data_root == "data-dir" else f"{spec.name} on {data_root}"
                directory = ensure_dataset(root, spec, _progress_writer(pytestconfig, label))
                train, val = image_folders(directory, image_size)
                info = {
                    "dataset": spec.name,
                    "num_classes": len(train.classes),
                    "dataset_mb": round(dataset_bytes(directory) / float(1 << 20), 3),
                    "dataset_dir": directory,
                }
        except DataError as exc:
            pytest.fail(str(exc), pytrace=False)
        info.update(train_samples=len(train), val_samples=len(val), data_root=data_root)
        cache[key] = (train, val, info)
        return cache[key]

    return get


@pytest.fixture
def data_root() -> str:
    """The data root a benchmark reads from; benchmarks parametrise it over --data-root."""
    return "data-dir"


@dataclass
class PowerSession:
    """The session's one power source, and the idle power measured with it."""

    source: Any
    reason: Optional[str]
    interval_s: float
    idle_w: Optional[float] = None
    idle_reason: Optional[str] = None

    def window(self) -> PowerWindow:
        return PowerWindow(self.source, self.reason or "", self.interval_s, self.idle_w)


@pytest.fixture(scope="session")
def power_session(pytestconfig: pytest.Config):
    interval = pytestconfig.getoption("power_interval")
    source, reason = open_source(pytestconfig.getoption("power_backend"), interval)
    session = PowerSession(source, reason, interval)
    idle_s = pytestconfig.getoption("power_idle_s")
    if source is not None and idle_s > 0:
        session.idle_w, session.idle_reason = measure_idle_w(source, idle_s, interval)
    pytestconfig.stash[POWER] = session
    yield session
    close = getattr(source, "close", None)
    if close:
        close()


@pytest.fixture(scope="module")
def continual_scenario(pytestconfig: pytest.Config, suite: SuiteState):
    """The continual-learning scenario, prepared once per module; writes its outputs at the end."""
    settings = suite.continual
    write = live_writer(pytestconfig)

    def note(line: str) -> None:
        suite.continual.setdefault("notes", []).append(line)
        write(f"edge-bench: {line}")

    root = str(pytestconfig.rootpath)
    try:
        choice = cl_setup.choose_photos(settings["data_real"], suite.data_dir, settings["seed"])
        if choice.note:
            note(choice.note)
        if choice.photo_set.problem_line():
            note(choice.photo_set.problem_line())
        reason = choice.photo_set.unusable_reason()
        if reason:
            pytest.skip(reason)
        pretraining = cl_setup.pretraining_for(suite.profile, settings)
        pretrained = pretraining.ensure(suite.data_dir, root, note)
    except (DataError, WorkerError) as exc:
        pytest.fail(str(exc), pytrace=False)
    targets = cl_setup.checkpoint_targets(os.path.join(root, ".bench-ckpt", f"continual-{os.getpid()}"))
    scenario = cl_setup.Scenario(settings, choice, pretrained, targets, root, write)
    try:
        yield scenario
    finally:
        cl_setup.remove_targets(targets)
    if scenario.results:
        directory = _continual_out_dir(pytestconfig, suite)
        try:
            outputs = cl_outputs.write_all(
                scenario.results, list(targets), directory, scenario.lines, settings["rss_budget_mb"]
            )
        except OSError as exc:
            outputs = {"error": f"cannot write the continual-learning outputs to {directory}: {exc.strerror}"}
        suite.continual["outputs"] = outputs
        suite.continual["summaries"] = [scenario.summary_line(r) for r in scenario.results]
        suite.continual["configs"] = [{k: r[k] for k in cl_setup.SUMMARY_KEYS if k in r} for r in scenario.results]
        suite.continual["photos"] = scenario.results[0]["photos"]
        suite.continual["pretraining"] = scenario.results[0]["pretraining"]


def _continual_out_dir(config: pytest.Config, suite: SuiteState) -> str:
    """results/<device>/continual/<NNNN>_<name>: the number the saved JSON of this run gets."""
    base = suite.results_dir or os.path.join(str(config.rootpath), "results", suite.device_id)
    save = getattr(config.option, "benchmark_save", None)
    label = time.strftime("run-%Y%m%d-%H%M%S")
    if suite.results_dir and save:
        from pytest_benchmark.utils import get_machine_id

        numbers = [
            int(os.path.basename(p)[:4])
            for p in glob.glob(os.path.join(suite.results_dir, get_machine_id(), "[0-9][0-9][0-9][0-9]_*.json"))
        ]
        label = f"{max(numbers, default=0) + 1:04d}_{save}"
    return os.path.join(base, "continual", label)


@pytest.fixture
def harness(benchmark, power_session) -> Harness:
    return Harness(benchmark, power_session.window)


def require_device(name: str) -> None:
    """Skip, with the reason, a parameter whose device this machine does not have."""
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
            pytest.skip(f"no CUDA device visible (torch {torch.__version__}, {build})")
