"""Refuse network access for the rest of the process.

The suite promises that a benchmark run sends nothing anywhere. An audit hook
(PEP 578) sees every socket the interpreter creates and every name lookup, in this
process and in forked DataLoader workers (they inherit it), and turns an IP socket or
a DNS lookup into an error. Local AF_UNIX sockets (multiprocessing's own plumbing)
stay allowed. Audit hooks cannot be removed: install it only in a process that must
stay offline to the end.
"""

from __future__ import annotations

import socket
import sys

_IP_FAMILIES = {int(socket.AF_INET), int(socket.AF_INET6)}
_LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
_installed = False


class NetworkForbidden(RuntimeError):
    """Raised when code in a benchmark run tries to use the network."""


def _hook(event: str, args: tuple) -> None:
    if event == "socket.__new__":
        family = args[1] if len(args) > 1 else None
        if family is not None and int(family) in _IP_FAMILIES:
            raise NetworkForbidden("a benchmark run may not open network sockets (edge-bench network guard)")
    elif event in _LOOKUPS:
        raise NetworkForbidden(f"a benchmark run may not resolve names ({event}; edge-bench network guard)")


def install() -> bool:
    """Install the guard once; returns True if this call installed it."""
    global _installed
    if _installed:
        return False
    sys.addaudithook(_hook)
    _installed = True
    return True
