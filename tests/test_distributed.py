"""The distributed benchmark: torchrun launch, the ranks' all-reduce, its figures, the guard, the counters."""

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support import leftovers
from bench_support.errors import Unavailable, UserError
from bench_support.measure import netdev
from bench_support.plugin.parsers import host_port
from bench_support.workloads import distributed, torchrun
from bench_support.workloads.data import DatasetSpec, ensure_dataset
from bench_support.workloads.torchrun import Topology

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- /proc/net/dev ------------------------------------------------------------------------

_HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier "
    "compressed\n"
)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True),
        st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
        max_size=5,
    )
)
def test_net_dev_parser_reads_each_interfaces_receive_and_transmit_bytes(interfaces):
    lines = [f"{name:>6}: {rx} 11 0 0 0 0 0 0 {tx} 22 0 0 0 0 0 0" for name, (rx, tx) in interfaces.items()]
    assert netdev.parse_net_dev(_HEADER + "\n".join(lines)) == interfaces


def test_net_dev_parser_leaves_out_malformed_lines():
    text = _HEADER + "    lo: 1 2 3\n  eth0: x 0 0 0 0 0 0 0 5 0 0 0 0 0 0 0\n  wl0: 7 0 0 0 0 0 0 0 9 0 0 0 0 0 0 0\n"
    assert netdev.parse_net_dev(text) == {"wl0": (7, 9)}


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**40))
def test_counter_delta_survives_one_wrap(before, sent):
    after = (before + sent) % 2**64
    assert netdev.delta(before, after) == sent
    assert netdev.delta(None, after) is None


def test_interface_facts_name_kind_and_speed_and_no_address(tmp_path):
    net = tmp_path / "sys/class/net"
    for name, files in {
        "lo": {"operstate": "unknown", "mtu": "65536"},
        "eth0": {"operstate": "up", "mtu": "1500", "speed": "1000", "address": "aa:bb:cc:dd:ee:ff"},
        "wlan0": {"operstate": "down", "mtu": "1500", "speed": "-1"},
    }.items():
        (net / name).mkdir(parents=True)
        for file, text in files.items():
            (net / name / file).write_text(text + "\n")
    (net / "eth0" / "device").mkdir()
    (net / "wlan0" / "wireless").mkdir()
    facts = {f["name"]: f for f in netdev.interface_facts(str(tmp_path))}
    assert facts["eth0"] == {"name": "eth0", "kind": "wired", "state": "up", "mtu": 1500, "speed_mbps": 1000}
    assert facts["lo"]["kind"] == "loopback" and facts["wlan0"]["kind"] == "wireless"
    assert "speed_mbps" not in facts["wlan0"]  # -1: the driver does not know; left out, not invented
    assert all("address" not in f for f in facts.values())


# --- figures ------------------------------------------------------------------------------


def test_comm_share_is_the_exposed_backward_time_over_the_step():
    probes = [
        {"backward_ms_sync": 150.0, "backward_ms_no_sync": 140.0, "step_ms_sync": 200.0, "pairs": 8},
        {"backward_ms_sync": 160.0, "backward_ms_no_sync": 140.0, "step_ms_sync": 200.0, "pairs": 8},
        {"backward_ms_sync": 148.0, "backward_ms_no_sync": 140.0, "step_ms_sync": 200.0, "pairs": 8},
    ]
    figures = distributed.comm_share(probes)
    assert figures["comm_ms_per_step"] == 10.0  # median over ranks of 10, 20, 8
    assert figures["comm_share"] == 0.05


def test_a_negative_exposed_time_is_kept_as_measured():
    probe = {"backward_ms_sync": 99.0, "backward_ms_no_sync": 100.0, "step_ms_sync": 200.0, "pairs": 8}
    assert distributed.comm_share([probe])["comm_share"] == -0.005


@given(st.floats(1, 1e4), st.integers(1, 64), st.floats(1, 1e4))
def test_scaling_efficiency_is_throughput_over_world_size_times_one_rank(rate, world, single):
    assert distributed.scaling_efficiency(rate, world, single) == pytest.approx(rate / (world * single), abs=1e-4)
    assert distributed.scaling_efficiency(rate, world, None) is None


def test_epoch_figures_sum_the_ranks_samples_over_the_round():
    ranks = [
        {"samples": 256, "steps": 16, "loop_s": 2.0, "allreduce_s": 0.8, "allreduce_bytes": 16 * 4000,
         "rss_peak_mb": 900.0, "rss_mb": 850.0},
        {"samples": 256, "steps": 16, "loop_s": 4.0, "allreduce_s": 1.6, "allreduce_bytes": 16 * 4000,
         "rss_peak_mb": 910.0, "rss_mb": 860.0},
    ]  # fmt: skip
    figures = distributed.epoch_figures(ranks, round_s=4.0)
    assert figures["samples_per_s"] == 128.0
    assert figures["samples_per_s_per_rank"] == [128.0, 64.0]
    assert figures["allreduce_ms_per_step"] == 75.0  # median of 50 and 100
    assert figures["allreduce_bytes_per_step"] == 4000
    assert figures["rss_peak_mb_per_rank"] == [900.0, 910.0]


# --- topology and options -----------------------------------------------------------------


def test_world_sizes_that_do_not_split_over_the_nodes_are_unavailable():
    assert torchrun.procs_per_node(4, Topology(nnodes=2, master=("10.0.0.1", 29500))) == 2
    with pytest.raises(Unavailable, match="does not split over 2 nodes"):
        torchrun.procs_per_node(1, Topology(nnodes=2, master=("10.0.0.1", 29500)))


def test_threads_share_the_nodes_cores_among_its_ranks():
    assert torchrun.threads_per_rank(1, cores=2) == 2
    assert torchrun.threads_per_rank(2, cores=2) == 1
    assert torchrun.threads_per_rank(4, cores=2) == 1


def test_torchrun_command_one_machine_and_across_machines():
    one = torchrun.torchrun_command(Topology(), 2, "cfg.json")
    assert "--master-addr=127.0.0.1" in one and "--master-port=0" in one and "--nproc-per-node=2" in one
    two = torchrun.torchrun_command(Topology(2, 1, ("192.168.1.20", 29500), "eth0"), 1, "cfg.json")
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=192.168.1.20", "--master-port=29500"} <= set(two)
    assert two[-3:] == ["-m", "bench_support.workloads.distributed_rank", "cfg.json"]
    assert Topology().interface == "lo" and Topology(2, 0, ("h", 1)).interface is None


@pytest.mark.parametrize(
    "text, expected",
    [("192.168.1.20:29500", ("192.168.1.20", 29500)), ("[fe80::1]:29500", ("fe80::1", 29500)),
     ("jetson-a.local:1234", ("jetson-a.local", 1234))],
)  # fmt: skip
def test_master_address_parser_accepts_host_and_port(text, expected):
    assert host_port("--dist-master")(text) == expected


@pytest.mark.parametrize("text", ["192.168.1.20", ":29500", "host:0", "host:70000", "host:port", "a b:1"])
def test_master_address_parser_refuses_with_one_line(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="expected HOST:PORT"):
        host_port("--dist-master")(text)


def test_topology_options_that_do_not_fit_together_are_refused():
    from bench_support.plugin.state import _topology

    def options(**given):
        values = {"dist_nnodes": 1, "dist_node_rank": 0, "dist_master": None, "dist_ifname": None, **given}
        return values.__getitem__

    assert _topology(options()) == Topology()
    with pytest.raises(UserError, match="--dist-master HOST:PORT"):
        _topology(options(dist_nnodes=2))
    with pytest.raises(UserError, match="must be below --dist-nnodes"):
        _topology(options(dist_nnodes=2, dist_node_rank=2, dist_master=("h", 1)))
    with pytest.raises(UserError, match="only with --dist-nnodes > 1"):
        _topology(options(dist_master=("h", 1)))


# --- the network guard's allow-list -------------------------------------------------------


def test_guard_allows_the_loopback_and_the_named_host_only():
    code = textwrap.dedent(
        """
        import socket
        from bench_support import netguard
        netguard.install(["192.0.2.7"])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        print("loopback bind ok")
        socket.getaddrinfo("localhost", 80)
        print("localhost lookup ok")
        for address in [("198.51.100.1", 80), ("192.0.2.7", 9)]:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(0.01)
            try:
                c.connect(address)
            except netguard.NetworkForbidden as exc:
                print("refused", address[0])
            except OSError:
                print("allowed", address[0])
        try:
            socket.getaddrinfo("example.org", 443)
        except netguard.NetworkForbidden:
            print("lookup refused")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env()
    ).stdout
    assert out.split("\n")[:5] == [
        "loopback bind ok",
        "localhost lookup ok",
        "refused 198.51.100.1",
        "allowed 192.0.2.7",
        "lookup refused",
    ]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT)


# --- a real launch: two ranks over the loopback -------------------------------------------


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return ensure_dataset(str(tmp_path_factory.mktemp("ddp")), DatasetSpec(32, 8, 32, seed=5))


def test_two_ranks_hold_identical_parameters_after_an_all_reduced_epoch(tiny_dataset):
    config = {
        "backend": "gloo", "model": "mobilenet_v3_small", "batch": 4, "optimizer": "sgd", "image_size": 32,
        "num_classes": 4, "seed": 3, "dataset_dir": tiny_dataset, "threads_per_rank": 1,
    }  # fmt: skip
    net = distributed.NetCounter("lo")
    with torchrun.Launch(config, 2, Topology(), ROOT) as launch:
        assert launch.ready["world_size"] == 2
        start = [r["digest"] for r in launch.request("params")["ranks"]]
        net.start()
        launch.request("epoch")
        net.stop()
        ranks = launch.request("after")["ranks"]
        end = [r["digest"] for r in launch.request("params")["ranks"]]
    # Each rank trained on its own half of the data: only the all-reduce makes them agree.
    assert start[0] == start[1] and end[0] == end[1] and end[0] != start[0]
    assert [r["samples"] for r in ranks] == [16, 16] and all(r["steps"] == 4 for r in ranks)
    payload = ranks[0]["allreduce_bytes"]
    assert payload > 4 * 4 * 1_000_000  # 4 steps of mobilenet_v3_small's >1 M float32 gradients
    # A ring all-reduce over 2 ranks sends the payload once from each: the loopback saw at least that.
    assert net.sent >= 2 * payload


def test_a_rank_that_fails_is_one_line_and_nothing_is_left(tmp_path, monkeypatch, request):
    # The temporary folder of this launch alone (torchrun's own log folder would land there), short enough for the
    # control socket's path (a Unix socket's path has at most 107 bytes; tmp_path's are longer).
    temp = tempfile.mkdtemp(prefix="ebt-", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(temp, ignore_errors=True))
    monkeypatch.setenv("TMPDIR", temp)
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    config = {
        "backend": "gloo", "model": "no_such_model", "batch": 4, "optimizer": "sgd", "image_size": 32,
        "num_classes": 4, "seed": 3, "dataset_dir": str(tmp_path), "threads_per_rank": 1,
    }  # fmt: skip
    with pytest.raises(torchrun.DistributedError) as failure:
        with torchrun.Launch(config, 1, Topology(), ROOT):
            pass
    assert "\n" not in str(failure.value) and "rank 0" in str(failure.value)
    assert tempfile.gettempdir() == temp
    assert os.listdir(temp) == []  # neither our folder nor torchrun's torchelastic_* log folder


def test_a_temporary_folder_too_long_for_the_control_socket_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    temp = tmp_path / ("t" * 60)
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(torchrun.DistributedError) as failure:
        torchrun.Launch({"threads_per_rank": 1}, 1, Topology(), ROOT)
    message = str(failure.value)
    assert "\n" not in message and "too long for the launch's control socket" in message and "TMPDIR" in message
    assert os.listdir(temp) == []


def _processes_naming(text):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


def test_a_killed_launch_leaves_no_rank_behind(tiny_dataset):
    """Ctrl-C's path: torchrun starts each rank in a session of its own, out of reach of a signal to the
    agent's group; the agent is told to end them, and a rank whose agent is gone ends itself."""
    config = {
        "backend": "gloo", "model": "mobilenet_v3_small", "batch": 4, "optimizer": "sgd", "image_size": 32,
        "num_classes": 4, "seed": 3, "dataset_dir": tiny_dataset, "threads_per_rank": 1,
    }  # fmt: skip
    launch = torchrun.Launch(dict(config, batch=1), 2, Topology(), ROOT)
    folder = launch._dir
    assert len(_processes_naming(folder)) >= 3  # the agent and two ranks
    launch._conn.sendall(b'{"cmd": "epoch"}\n')  # killed in the middle of an epoch: ranks inside collectives
    time.sleep(0.5)
    launch.close(kill=True)
    deadline = time.monotonic() + 20
    while _processes_naming(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_naming(folder)


def test_a_master_that_does_not_resolve_is_one_line_before_torchrun_starts(tmp_path):
    topology = torchrun.Topology(nnodes=2, node_rank=1, master=("nohost.invalid", 29500))
    with pytest.raises(
        torchrun.DistributedError, match=r"--dist-master nohost.invalid:29500: the host does not resolve"
    ):
        torchrun.Launch({"threads_per_rank": 1}, 1, topology, str(tmp_path))
    assert not glob.glob(os.path.join(tempfile.gettempdir(), f"edge-bench-ddp-{leftovers.owner_tag()}-*"))


def test_a_rendezvous_nobody_answers_is_announced_then_one_line_and_leaves_nothing(monkeypatch):
    """Node 1 of 2 whose master never answers: torchrun itself would retry for many minutes. The wait says what it
    waits for while it lasts, ends at its bound in one line, and leaves no process and no folder."""
    with socket.socket() as probe:  # a loopback port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(torchrun, "READY_TIMEOUT_S", 12.0)
    monkeypatch.setattr(torchrun, "WAIT_SAY_FIRST_S", 1.0)
    made, mkdtemp = [], tempfile.mkdtemp
    monkeypatch.setattr(torchrun.tempfile, "mkdtemp", lambda **kw: made.append(mkdtemp(**kw)) or made[-1])
    said = []
    topology = Topology(nnodes=2, node_rank=1, master=("127.0.0.1", port))
    waiting = rf"the other nodes at the rendezvous 127\.0\.0\.1:{port} \(this is node 1 of 2\)"
    with pytest.raises(
        torchrun.DistributedError, match=rf"^the ranks did not start within 12 s \(waiting for {waiting}\)"
    ):
        torchrun.Launch({"threads_per_rank": 1}, 1, topology, ROOT, said.append)
    assert said and all(re.match(rf"distributed: waiting for {waiting}: \d+ s so far, at most 12 s$", s) for s in said)
    assert len(made) == 1 and not os.path.exists(made[0])
    assert not _processes_naming(made[0])
