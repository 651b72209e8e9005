"""Checkpoints that survive a full disk, and a corrupt one that says what to do.

Lightning writes a checkpoint over the previous one in place: when the disk fills part-way, the
stage is left with a truncated ``last.ckpt`` and ``ckpt_path=last`` then fails with torch's own
message, which names no file. :class:`AtomicCheckpointIO` writes the new checkpoint to a temporary
sibling (``<name>.tmp-<pid>-<random>``, with the mode a plain ``open`` gives: ``0o666`` less the
umask), flushes and ``fsync``\\ s it, and only then renames it over the destination; a failed
save removes the temporary file and leaves the previous checkpoint as it was. Reading a
checkpoint that is truncated or corrupt raises :class:`CorruptCheckpointError`, which names the
file and how to go on.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from shiftlab.utils.io import _open_temp_file

__all__ = ["AtomicCheckpointIO", "CorruptCheckpointError", "is_local_path"]

# What torch.load raises on a file that is not a whole checkpoint: a truncated zip archive gives a
# RuntimeError ("PytorchStreamReader failed reading zip archive") or, read through fsspec as
# Lightning reads it, an OSError (EINVAL, a seek before the start); a cut legacy pickle an EOFError
# or an UnpicklingError. Which of them is the file's fault is decided by looking at the file.
_READ_ERRORS = (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError)
# An OSError of these kinds is about reaching the file, not about what it holds.
_ACCESS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that cannot be read: truncated (a full disk, a killed copy) or corrupt."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        others = [p for p in Path(path).parent.glob("*.ckpt") if p.name != Path(path).name]
        other = str(max(others, key=_mtime)) if others else "<an earlier .ckpt file>"
        super().__init__(
            f"{path} is not a readable checkpoint (truncated or corrupt: {reason}); delete it and resume from an "
            f"earlier one with ckpt_path={other}, or start the stage again without ckpt_path"
        )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def is_local_path(path: Any) -> bool:
    """Whether ``path`` is a file on this machine (not ``s3://...`` and the like)."""
    text = str(path)
    return "://" not in text or text.startswith("file://")


def _local(path: Any) -> Path:
    text = str(path)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem opens directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` ``checkpoint`` to ``path`` through a temporary sibling renamed over it: a
    reader (a resume) sees the old checkpoint or the new one, never part of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp_file(path.parent, f"{path.name}.tmp-{os.getpid()}-", "")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _archive_is_whole(path: Path) -> bool | None:
    """True when ``path`` is a zip archive (torch's format) whose every member reads back with
    its checksum, False when it is a damaged one, None when it is not a zip archive at all."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
        return False


def _is_corrupt(path: Path, error: BaseException) -> bool:
    """Whether ``error`` (raised reading ``path``) comes from the file being damaged, rather than
    from how it is read (a CUDA map_location on a machine without one, a weights_only refusal)."""
    whole = _archive_is_whole(path)
    if whole is not None:
        return not whole
    # Not a whole zip archive: one cut before its directory (it starts as one), an empty file, or a
    # legacy pickle (damaged when it ends early or does not unpickle).
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04" or not head:
        return True
    if isinstance(error, pickle.UnpicklingError):
        return "weights only load failed" not in str(error).lower()
    return isinstance(error, EOFError)


def load_checked(path: str | Path, load: Callable[[], Any]) -> Any:
    """``load()`` (a read of the checkpoint ``path``); a damaged file raises
    :class:`CorruptCheckpointError` instead of torch's message, which names no file."""
    try:
        return load()
    except _ACCESS_ERRORS:
        raise
    except _READ_ERRORS as error:
        local = _local(path)
        if not is_local_path(path) or not local.is_file() or not _is_corrupt(local, error):
            raise
        raise CorruptCheckpointError(local, _reason(local, error)) from error


def _reason(path: Path, error: BaseException) -> str:
    text = str(error).strip()
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    where = f"{size} bytes" if size is not None else "size unknown"
    return f"{type(error).__name__}: {text} ({where})" if text else f"{type(error).__name__} ({where})"


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` with atomic saves and loads that name a corrupt file (remote
    paths, ``s3://`` and the like, are saved as Lightning saves them)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or not is_local_path(path):
            return super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        save_atomic(checkpoint, _local(path))

    def load_checkpoint(self, path, map_location: Optional[Callable] = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        return load_checked(path, lambda: super(AtomicCheckpointIO, self).load_checkpoint(
            path, map_location=map_location, weights_only=weights_only))
