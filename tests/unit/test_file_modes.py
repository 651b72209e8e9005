"""Files and cache entries that shiftlab writes get the modes of a plain ``open``/``mkdir``
(``0o666``/``0o777`` less the umask), not ``mkstemp``'s ``0o600`` or ``mkdtemp``'s ``0o700``:
on a shared cluster the team reads a run's configs, metrics and reports, and the shared cache."""

from __future__ import annotations

import os
import stat

import pytest

from shiftlab.utils.cache import publish
from shiftlab.utils.io import make_temp_dir, write_bytes_atomic, write_json_atomic, write_text_atomic

WRITERS = {
    "json": lambda path: write_json_atomic(path, {"a": 1}),
    "text": lambda path: write_text_atomic(path, "hello\n"),
    "bytes": lambda path: write_bytes_atomic(path, b"\x00\x01"),
}


@pytest.fixture
def umask():
    """Set the process's umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writers_follow_the_umask(writer, mask, expected, umask, tmp_path):
    umask(mask)
    path = tmp_path / "sub" / f"out.{writer}"
    WRITERS[writer](path)
    assert mode(path) == expected
    plain = tmp_path / "plain"
    with open(plain, "w"):
        pass
    assert mode(path) == mode(plain)  # as a plain open(path, "w") would make it
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_a_replaced_file_gets_the_mode_of_a_new_one(umask, tmp_path):
    umask(0o077)
    path = write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    assert mode(path) == 0o600
    umask(0o022)
    write_json_atomic(path, {"a": 2})  # e.g. a file an older shiftlab made private
    assert mode(path) == 0o644
    assert path.read_text() == '{\n  "a": 2\n}\n'


def test_a_failed_write_leaves_nothing(umask, tmp_path, monkeypatch):
    umask(0o022)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o755), (0o077, 0o700)])
def test_temporary_directories_follow_the_umask(mask, expected, umask, tmp_path):
    umask(mask)
    made = make_temp_dir(tmp_path, ".entry.partial-")
    assert made.parent == tmp_path and made.name.startswith(".entry.partial-") and made.is_dir()
    assert mode(made) == expected
    assert make_temp_dir(tmp_path, ".entry.partial-") != made


def test_a_published_cache_entry_is_readable_by_the_group(umask, tmp_path):
    umask(0o022)
    final = tmp_path / "cache" / "corpora" / "0123abcd"

    def fill(tmp):
        write_json_atomic(tmp / "manifest.json", {"rows": 3})
        (tmp / "part-0.arrow").write_bytes(b"rows")
        (tmp / "shards").mkdir()

    publish(final, fill)
    assert mode(final) == 0o755
    assert mode(final / "manifest.json") == 0o644
    assert mode(final / "part-0.arrow") == 0o644
    assert mode(final / "shards") == 0o755
    assert mode(final.parent) == 0o755
