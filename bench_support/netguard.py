"""Refuse network access for the rest of the process.

The suite promises that a benchmark run sends nothing anywhere. An audit hook
(PEP 578) sees every socket the interpreter creates and every name lookup, in this
process and in forked DataLoader workers (they inherit it), and turns an IP socket or
a DNS lookup into an error. Local AF_UNIX sockets (multiprocessing's own plumbing)
stay allowed. Audit hooks cannot be removed: install it only in a process that must
stay offline to the end.

The distributed benchmark needs TCP between its ranks. Its processes (torchrun's agent
and the ranks) install the guard with ``allowed_hosts``: IP sockets may then exist, but
every connect, bind, send and name lookup in Python must name the loopback or one of
those hosts (the rendezvous address the user gave); the machine's own name may be
looked up (torchrun's agent labels its events with it), not connected to. The C++ side of torch (the TCPStore,
gloo) is out of an audit hook's sight; it only talks to the endpoint torchrun was given
and, on one machine, binds to the loopback interface (``GLOO_SOCKET_IFNAME=lo``).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any, FrozenSet, Iterable, Optional

_IP_FAMILIES = {int(socket.AF_INET), int(socket.AF_INET6)}
_LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
_ADDRESSED = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_installed = False
_allowed: Optional[FrozenSet[str]] = None  # None: no IP at all
_own_name: FrozenSet[str] = frozenset()  # this machine's name: looked up, never connected to


class NetworkForbidden(RuntimeError):
    """Raised when code in a benchmark run tries to use the network."""


def is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def host_allowed(host: Any, allowed: FrozenSet[str]) -> bool:
    """Loopback, or a host the user named (compared as written, case-insensitively)."""
    if is_loopback(host):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return isinstance(host, str) and host.lower() in allowed


def _host_of(event: str, args: tuple) -> Any:
    if event in ("socket.gethostbyname", "socket.gethostbyaddr", "socket.getaddrinfo"):
        return args[0] if args else None
    if event == "socket.getnameinfo":
        address = args[0] if args else None
    elif event == "socket.sendmsg":
        address = args[1] if len(args) > 1 else None
    else:  # connect, bind, sendto: (socket, address)
        address = args[1] if len(args) > 1 else None
    return address[0] if isinstance(address, tuple) and address else address


def _hook(event: str, args: tuple) -> None:
    if _allowed is None:
        if event == "socket.__new__":
            family = args[1] if len(args) > 1 else None
            if family is not None and int(family) in _IP_FAMILIES:
                raise NetworkForbidden("a benchmark run may not open network sockets (edge-bench network guard)")
        elif event in _LOOKUPS:
            raise NetworkForbidden(f"a benchmark run may not resolve names ({event}; edge-bench network guard)")
        return
    if event in _LOOKUPS or event in _ADDRESSED:
        if event in _ADDRESSED and not _is_ip_socket(args):
            return  # AF_UNIX: a path, not a host
        host = _host_of(event, args)
        if event == "socket.sendmsg" and host is None:
            return  # a connected socket: its peer passed the connect check
        if event in _LOOKUPS and isinstance(host, str) and host.lower() in _own_name:
            return
        if not host_allowed(host, _allowed):
            allowed = ", ".join(sorted(_allowed)) or "none"
            raise NetworkForbidden(
                f"{event} to {host!r}: only the loopback and the named rendezvous host ({allowed}) "
                "are allowed (edge-bench network guard)"
            )


def _is_ip_socket(args: tuple) -> bool:
    sock = args[0] if args else None
    family = getattr(sock, "family", None)
    return family is not None and int(family) in _IP_FAMILIES


def install(allowed_hosts: Optional[Iterable[str]] = None) -> bool:
    """Install the guard once; returns True if this call installed it.

    Without ``allowed_hosts`` no IP socket may be created at all. With it (possibly
    empty: loopback only), sockets may exist but address only the loopback or those hosts.
    """
    global _installed, _allowed, _own_name
    if _installed:
        return False
    _allowed = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
    # torchrun's agent labels its events with getfqdn(gethostname()): a lookup /etc/hosts answers.
    _own_name = frozenset({socket.gethostname().lower()})
    sys.addaudithook(_hook)
    _installed = True
    return True
