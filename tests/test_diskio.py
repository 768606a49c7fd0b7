"""/proc/diskstats arithmetic: parsing, counter wraps, iostat's figures."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench_support.measure.diskio import DISKSTATS_FIELDS, IoSnapshot, io_figures, parse_diskstats
from bench_support.measure.sysfs import counter_delta

KERNEL_LINES = """\
 254       0 vda 40417 1403 4112666 13921 227380 95113 7791936 285626 0 144440 316712 0 0 0 0 9641 17163
 179       0 mmcblk0 3120 1217 216034 4873 436 611 14912 5043 0 5476 9916
 179       2 mmcblk0p2 2912 1217 209338 4608 436 611 14912 5043 0 5340 9651 0 0 0 0
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0
"""


def test_parses_every_kernel_width():
    stats = parse_diskstats(KERNEL_LINES)
    assert set(stats) == {"vda", "mmcblk0", "mmcblk0p2", "loop0"}
    assert stats["vda"]["reads"] == 40417 and stats["vda"]["sectors_read"] == 4112666
    assert stats["mmcblk0"]["ms_weighted"] == 9916  # the 4.x kernel's 11 fields
    assert stats["mmcblk0p2"]["ms_io"] == 5340


@given(old=st.integers(0, 2**32 - 1), step=st.integers(0, 2**32 - 1))
def test_32_bit_counters_wrap_once(old, step):
    new = (old + step) % 2**32
    assert counter_delta(old, new) == step


@given(old=st.integers(2**32, 2**64 - 1), step=st.integers(0, 2**40))
def test_64_bit_counters_wrap_once(old, step):
    new = (old + step) % 2**64
    if new >= 2**32 or new >= old:  # below 2**32 after a 64-bit wrap the width is ambiguous
        assert counter_delta(old, new) == step


def _snap(t, **fields):
    line = {name: 0 for name in DISKSTATS_FIELDS}
    line.update(fields)
    return IoSnapshot(t, line, fields.get("proc", 0))


@given(
    dt=st.floats(0.001, 1000),
    reads=st.integers(0, 10**7),
    sectors=st.integers(0, 10**9),
    ms_reading=st.integers(0, 10**7),
    ms_io=st.integers(0, 10**7),
)
def test_iostat_figures(dt, reads, sectors, ms_reading, ms_io):
    before = _snap(10.0, reads=5, sectors_read=100, ms_reading=7, ms_io=3)
    after = _snap(10.0 + dt, reads=5 + reads, sectors_read=100 + sectors, ms_reading=7 + ms_reading, ms_io=3 + ms_io)
    f = io_figures(before, after)
    assert f["disk_reads"] == reads
    assert f["disk_read_mb"] == pytest.approx(sectors * 512 / 2**20)
    assert f["read_iops"] == pytest.approx(reads / dt)
    assert f["disk_read_mb_per_s"] == pytest.approx(sectors * 512 / 2**20 / dt)
    if reads:
        assert f["r_await_ms"] == pytest.approx(ms_reading / reads)
    else:
        assert f["r_await_ms"] is None  # no reads: no average wait, not 0
    assert 0 <= f["util_pct"] <= 100
    assert f["util_pct"] == pytest.approx(min(100.0, 100 * ms_io / (dt * 1000)))


def test_no_device_gives_no_device_figures():
    f = io_figures(IoSnapshot(0.0, None, 10), IoSnapshot(1.0, None, 4106))
    assert "disk_read_mb" not in f and f["proc_read_mb"] == pytest.approx(4096 / 2**20)
