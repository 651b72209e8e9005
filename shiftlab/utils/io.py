"""Atomic writes: a reader sees the old file or the new one, never half of one.

Modes. The writers here create the file as a plain ``open(path, "w")`` would: ``0o666`` less the
process's umask (or what the directory's default ACL says), so a colleague on a shared cluster
reads a run's configs, metrics and reports as they read any other file of its owner. They do not
go through :func:`tempfile.mkstemp`, which makes every file ``0o600`` whatever the umask: the
temporary sibling is opened with ``os.open(..., O_CREAT | O_EXCL, 0o666)`` and the kernel applies
the umask itself, so the umask is never read, nor changed (``os.umask`` sets it for every thread
of the process: reading it that way is a race with any thread creating a file meanwhile).
:func:`make_temp_dir` does the same for temporary directories (``0o777`` less the umask, where
:func:`tempfile.mkdtemp` makes them ``0o700``): for directories that are renamed into a shared
place, such as cache entries. A file that is replaced gets the mode of a new file, not that of
the file it replaces.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

_ATTEMPTS = 100  # as tempfile: names are random, so a clash is rare and a second one rarer
_FILE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


def _temp_name(directory: Path, prefix: str, suffix: str) -> Path:
    return directory / f"{prefix}{secrets.token_hex(6)}{suffix}"


def _open_temp_file(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new file in ``directory`` (like ``mkstemp``, but with the usual mode: ``0o666`` less the
    umask, applied by the kernel): its descriptor, open for writing, and its path."""
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(directory, prefix, suffix)
        try:
            return os.open(tmp, _FILE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {directory}")


def make_temp_dir(directory: str | Path, prefix: str) -> Path:
    """A new directory ``<directory>/<prefix><random>``, like ``tempfile.mkdtemp`` but with the
    mode of a plain ``mkdir`` (``0o777`` less the umask) rather than ``0o700``: for a directory
    that is filled and then renamed into a place others read (a shared cache)."""
    directory = Path(directory)
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(directory, prefix, "")
        try:
            tmp.mkdir(0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}* in {directory}")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp_file(path.parent, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
