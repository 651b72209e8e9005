"""The lint configuration in pyproject.toml ([tool.ruff]) holds for the whole repository, so a
lint error fails the tests like any other error (``ruff check --fix`` repairs most)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "shiftlab", "tests", "benchmarks",
                           "experiments"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
