"""Whole-or-nothing file writes: a temp file in the target's directory, then a rename.

A reader never sees a half-written manifest, sidecar or result: under the final name
there is either the previous complete file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Optional


def write_atomic(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Call ``write(tmp_path)``, then rename the temp file over ``path``; no temp file survives a failure.

    An OSError about the temp file (a read-only folder, a full disk, ``path`` a directory) names ``path`` instead:
    the temp file is gone by the time anyone reads the message."""
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-", suffix=suffix)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from exc
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; generated data and results are for every user to read
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (tmp, None) and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, path) from exc  # the errno keeps its subclass (IsADirectoryError)
        raise


def write_json_atomic(path: str, obj: Any, indent: Optional[int] = 1) -> None:
    def dump(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=indent, sort_keys=True)

    write_atomic(path, dump, suffix=".json")


def read_json(path: str) -> Optional[Any]:
    """The file's JSON, or None when it is missing or not valid JSON."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
