"""The benchmark script keeps working (it is a measurement: no timing is asserted here)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_shift_throughput_quick_run_reports_every_policy():
    from shiftlab.shifts import POLICIES

    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "shift_throughput.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    quick_units = {"token", "word"}  # --quick measures token and word units
    for name, cls in POLICIES.items():
        if quick_units & set(cls.SUPPORTED_UNITS):
            assert f"| {name} |" in result.stdout, name
    assert "MLM collator" in result.stdout and "num_workers" in result.stdout
    assert "FAIL (error)" not in result.stdout
