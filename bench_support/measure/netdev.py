"""Network interfaces: their byte counters (``/proc/net/dev``) and link facts (``/sys/class/net``).

The distributed benchmark reads the counters of the interface its ranks talk over
around the measured rounds: the bytes that really crossed it, beside the all-reduce
payload the ranks handed to the backend. On one machine that is ``lo``, which counts
each packet once as sent and once as received; the transmitted counter is used.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from bench_support.measure.sysfs import counter_delta, read_text

#: /proc/net/dev columns after the interface name: 8 receive, then 8 transmit counters.
_RX_BYTES, _TX_BYTES = 0, 8
COUNTER_BITS = 64  # the kernel's counters are 64-bit (rtnl_link_stats64)


def parse_net_dev(text: str) -> Dict[str, Tuple[int, int]]:
    """``{interface: (rx_bytes, tx_bytes)}``; malformed lines are left out."""
    result: Dict[str, Tuple[int, int]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or "|" in line:
            continue
        fields = rest.split()
        if len(fields) < 16:
            continue
        try:
            result[name.strip()] = (int(fields[_RX_BYTES]), int(fields[_TX_BYTES]))
        except ValueError:
            continue
    return result


def counters(root: str = "/") -> Dict[str, Tuple[int, int]]:
    try:
        with open(os.path.join(root, "proc/net/dev")) as fh:
            return parse_net_dev(fh.read())
    except OSError:
        return {}


def tx_bytes(interface: str, root: str = "/") -> Optional[int]:
    found = counters(root).get(interface)
    return None if found is None else found[1]


def delta(before: Optional[int], after: Optional[int], bits: int = COUNTER_BITS) -> Optional[int]:
    """Bytes between two readings of one counter, across one wrap."""
    if before is None or after is None:
        return None
    return int(counter_delta(before, after, 1 << bits))


def interface_facts(root: str = "/") -> List[Dict[str, Any]]:
    """Every interface: name, kind, state, MTU and link speed where the driver reports it (no addresses)."""
    base = os.path.join(root, "sys/class/net")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    facts = []
    for name in names:
        folder = os.path.join(base, name)
        entry: Dict[str, Any] = {"name": name}
        if name == "lo":
            entry["kind"] = "loopback"
        elif os.path.isdir(os.path.join(folder, "wireless")):
            entry["kind"] = "wireless"
        elif os.path.exists(os.path.join(folder, "device")):
            entry["kind"] = "wired"
        else:
            entry["kind"] = "virtual"
        state = read_text(os.path.join(folder, "operstate"))
        if state:
            entry["state"] = state
        for key, file in (("mtu", "mtu"), ("speed_mbps", "speed")):
            value = read_text(os.path.join(folder, file))
            if value and value.lstrip("-").isdigit() and int(value) > 0:
                entry[key] = int(value)
        facts.append(entry)
    return facts
