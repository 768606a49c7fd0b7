"""argparse ``type=`` parsers for the suite's options, and pytest's usage error as one line.

A parser raises ``ArgumentTypeError`` with a message that already names the option and
the value (``--train-images 2: need at least 4 (one image per class)``);
:func:`compact_usage` strips argparse's own prefix and pytest's usage lines around it.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import tempfile
from typing import Callable, Optional, Tuple

import pytest

from bench_support.errors import UserError

# --- parsers ------------------------------------------------------------------------------


def given_path(option: str, path: str) -> str:
    """``path`` unless it is empty: ``--save-results=$DIR`` with DIR unset would otherwise save nothing, or write
    into the current folder, without a word."""
    if not path.strip():
        raise UserError(f"{option} '': an empty path (an unset variable?); give a folder, or leave the option out")
    return path


def writable_dir(option: str, path: str, create: bool = False) -> str:
    """The absolute path of a directory this process can write into; UserError otherwise."""
    path = os.path.abspath(os.path.expanduser(given_path(option, path)))
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{option} {path}: cannot create it ({exc.strerror})") from None
    if not os.path.isdir(path):
        raise UserError(f"{option} {path}: no such directory")
    try:  # a real write: catches read-only mounts and immutable dirs, which root meets too
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path}: directory is not writable ({exc.strerror})") from None
    return path


def creatable_prefix(option: str, prefix: str) -> str:
    """A file-name prefix whose folder exists and is writable, or can be made in the nearest folder that exists
    (as pytest-benchmark makes it when it writes); UserError otherwise. Nothing is left behind by the check."""
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(prefix)))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{option} {prefix}: {existing} is not a directory")
    try:  # a real try, as for writable_dir: root passes access() checks that /proc or a read-only mount refuse
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".edge-bench-probe-"))
    except OSError as exc:
        where = folder if existing == folder else f"{folder} (cannot be made in {existing})"
        raise UserError(f"{option} {prefix}: cannot write into {where}: {exc.strerror}") from None
    return prefix


def parser_of(check: Callable[[str], object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return check(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def at_least(least: int, option: str, why: str = "", most: Optional[int] = None) -> Callable[[str], object]:
    def check(text: str) -> int:
        below = f"need at least {least}" + (f" ({why})" if why else "")
        try:
            value = int(text)
        except ValueError:
            # Python reads no number of more than 4300 digits: such a one is out of range, not malformed.
            digits = re.fullmatch(r"\s*([+-]?)\d+\s*", text)
            if digits and digits.group(1) == "-":
                raise UserError(f"{option} {_shown(text.strip())}: {below}") from None
            if digits and most is not None:
                raise UserError(f"{option} {_shown(text.strip())}: at most {most}") from None
            raise UserError(f"{option} {_shown(text.strip())}: expected a whole number") from None
        if value < least:
            raise UserError(f"{option} {_shown(text.strip())}: {below}")
        if most is not None and value > most:
            raise UserError(f"{option} {_shown(text.strip())}: at most {most}")
        return value

    return parser_of(check)


def _shown(text: str) -> str:
    """A long value as its head and length: the error stays one readable line."""
    return text if len(text) <= 30 else f"{text[:12]}... ({len(text)} characters)"


def positive_seconds(option: str, allow_zero: bool = False, at_most: Optional[float] = None) -> Callable[[str], object]:
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{option} {text}: expected a number") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise UserError(f"{option} {text}: must be a finite number more than 0" + (" (or 0)" if allow_zero else ""))
        if at_most is not None and value > at_most:
            raise UserError(f"{option} {text}: at most {at_most:g} seconds")
        return value

    return parser_of(check)


def percent(option: str) -> Callable[[str], object]:
    """``5%`` or ``5`` into the fraction 0.05; more than 0 and below 100 %."""

    def check(text: str) -> float:
        try:
            value = float(text.strip().removesuffix("%"))
        except ValueError:
            raise UserError(f"{option} {text}: expected a percentage such as 5%") from None
        if not math.isfinite(value) or not 0 < value < 100:
            raise UserError(f"{option} {text}: must be more than 0% and less than 100%")
        return value / 100

    return parser_of(check)


def named_dir(option: str, reserved: Tuple[str, ...] = ()) -> Callable[[str], object]:
    """``NAME=PATH`` into (name, writable absolute path)."""

    def check(value: str) -> Tuple[str, str]:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UserError(f"{option} {value}: expected NAME=PATH, e.g. {option} sdcard=/media/sd")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise UserError(f"{option} {value}: NAME may hold letters, digits, '.', '_' and '-' only")
        if name in reserved:
            raise UserError(f"{option} {value}: {name} is a built-in target; choose another NAME")
        return name, writable_dir(option, path)

    return parser_of(check)


def existing_dir(option: str) -> Callable[[str], object]:
    return parser_of(lambda path: writable_dir(option, path))


def path_text(option: str) -> Callable[[str], object]:
    """A path checked later (where it is made): here only that it is not empty."""
    return parser_of(lambda path: given_path(option, path))


# --- one-line usage errors ----------------------------------------------------------------


def one_line_usage_errors(parser: pytest.Parser) -> None:
    """Reduce pytest's usage error (usage, error, ini and rootdir lines) to the error line.

    A misspelt option then reads as one line, with the nearest real option suggested.
    Wraps this parser instance only; if pytest's internals change, its own message shows.
    """
    # An installed plugin's options are known from pytest's early parse on, so a bad value can fail there
    # (parse_known_args) as well as in the final parse.
    for name in ("parse", "parse_known_args", "parse_known_and_unknown_args"):
        original = getattr(parser, name, None)
        if original is not None:
            setattr(parser, name, _compacting(original, parser))


def _compacting(original, parser: pytest.Parser):
    def parse(args, namespace=None):
        try:
            return original(args, namespace=namespace)
        except pytest.UsageError as exc:
            raise pytest.UsageError(compact_usage(str(exc), parser)) from None

    return parse


def compact_usage(text: str, parser: pytest.Parser) -> str:
    line = next((ln for ln in text.splitlines() if ": error: " in ln), None)
    if line is None:
        return text
    message = line.split(": error: ", 1)[1]
    # argparse prefixes a type= parser's message with "argument --x: "; ours already names the option.
    match = re.match(r"argument (--[\w-]+)(?:/[^:]*)?: (\1 .*)$", message)
    if match:
        message = match.group(2)
    if message.startswith("unrecognized arguments:"):
        known = list(getattr(getattr(parser, "optparser", None), "_option_string_actions", {}))
        for word in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(word.split("=")[0], known, n=1) if word.startswith("--") else []
            if close:
                message += f" (did you mean {close[0]}?)"
                break
    return message


def host_port(option: str) -> Callable[[str], object]:
    """``HOST:PORT`` (an IPv6 address in brackets: ``[fe80::1]:29500``)."""

    def check(text: str) -> Tuple[str, int]:
        host, sep, port = text.strip().rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
            raise UserError(f"{option} {text!r}: expected HOST:PORT, e.g. 192.168.1.20:29500")
        return host, int(port)

    return parser_of(check)
