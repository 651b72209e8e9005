"""SIGKILL (no handler, nothing flushed) at three steps across both stages of one run, each time
resumed with ``ckpt_path=last``: the final metrics and every stage's CSV history equal the
uninterrupted run's. The kills land mid-epoch in pretraining, right after an epoch's last batch
was checkpointed, and mid-epoch in fine-tuning's second epoch (CPU, ``shiftlab-train`` itself)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_csv_history import rows, same  # noqa: E402
from test_resume import SETTINGS, without_times  # noqa: E402

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
# Fine-tuning: 80 examples in batches of 8, 10 steps an epoch; last.ckpt every 5 steps, so the one
# at step 10 is taken at the first epoch's last batch.
OVERRIDES = [s for s in SETTINGS if not s.startswith("callbacks.")] + [
    "callbacks.last.every_n_train_steps=5", "backbone.config.hidden_size=32", "logger=csv"]
KILLS = [("pretrain", 7), ("order", 12), ("order", 18)]


def train(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]),
               SHIFTLAB_UPSTREAM_WARNINGS="1")  # nothing silenced: a resume must not warn of a loader "not resumable"
    return subprocess.run([sys.executable, "-m", "shiftlab.train", *OVERRIDES, f"hydra.run.dir={run_dir}", *extra],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_sigkill_at_three_steps_then_resume_equals_the_uninterrupted_run(tmp_path):
    reference = tmp_path / "uninterrupted"
    done = train(reference)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run_dir = tmp_path / "killed"
    for attempt, (stage, step) in enumerate(KILLS):
        killed = train(run_dir, *(["ckpt_path=last"] if attempt else []), "+callbacks.kill._target_=faults.KillAt",
                       f"+callbacks.kill.stage={stage}", f"+callbacks.kill.step={step}")
        assert killed.returncode == -signal.SIGKILL, (stage, step, killed.stdout[-3000:] + killed.stderr[-3000:])
        assert "not resumable" not in killed.stderr + killed.stdout
        assert json.loads((run_dir / "run_info.json").read_text())["status"] == "running"  # nothing could record it
        assert not (run_dir / "metrics.json").exists()
    resumed = train(run_dir, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr + resumed.stdout

    got, want = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    assert without_times(got) == without_times(want)
    for stage in ("pretrain", "order"):
        header, history = rows(run_dir / stage / "metrics.csv")
        expected_header, expected = rows(reference / stage / "metrics.csv")
        assert header == expected_header, stage
        assert len(history) == len(expected), stage
        for i, (row, expected_row) in enumerate(zip(history, expected)):
            assert all(same(row[k], expected_row[k]) for k in expected_header if not k.endswith("time_s")), \
                (stage, i, row, expected_row)
