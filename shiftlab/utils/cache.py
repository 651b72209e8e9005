"""shiftlab's on-disk cache: where it is, and building an entry exactly once.

Entries (tokenised corpora, shared pretraining exports) live under ``$SHIFTLAB_CACHE`` (default
``~/.cache/shiftlab``), each in a directory named by a content hash of what made it. An entry is
built by one process at a time, under a file lock; the others wait for the lock and then find the
entry. It is built in a temporary sibling and renamed into place only when complete, so a reader
never sees half an entry, and a build that fails (an error, a signal, a full disk) leaves nothing
behind but its temporary folder, which the next build removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

from .logs import log

CACHE_ENV = "SHIFTLAB_CACHE"


def cache_root() -> Path:
    """``$SHIFTLAB_CACHE``, else ``~/.cache/shiftlab``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "shiftlab"


def content_key(inputs: Any) -> str:
    """A short hash of JSON-able inputs (keys sorted): the name of a cache entry."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def source_fingerprint(*paths: Path) -> str:
    """A hash of source files: the code that makes an entry is part of its key, so changing the
    code never serves an entry the old code made."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def entry_lock(final: Path, waiting_message: str | None = None) -> Iterator[None]:
    """Hold the lock of the cache entry ``final`` (other processes asking for it wait): take it
    before looking for the entry and keep it until the entry is published, so that exactly one
    process makes it. The operating system releases it if the process dies."""
    from filelock import FileLock, Timeout

    final.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(final.parent / f".{final.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting_message:
            log.info(waiting_message)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def publish(final: Path, fill: Callable[[Path], None]) -> None:
    """Make the entry ``final``: ``fill(tmp)`` writes a temporary sibling, renamed into place when
    complete (removed if ``fill`` fails). Call it holding :func:`entry_lock`."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a build that died
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_once(final: Path, build: Callable[[Path], None], *, waiting_message: str | None = None) -> bool:
    """Make sure the directory ``final`` exists, calling ``build(tmp)`` to fill a temporary
    directory that then becomes ``final``. Returns True when this call built it, False when it
    was there already (or another process built it while this one waited)."""
    if final.is_dir():
        return False
    with entry_lock(final, waiting_message):
        if final.is_dir():
            return False
        publish(final, build)
        return True
