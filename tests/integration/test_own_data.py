"""A newcomer's own CoNLL files, end to end through ``shiftlab-train data=conll`` (docs/your_own_data.md):
relative file names read under ``$SHIFTLAB_DATA``, the validation split held out of train, the run
named after the data, and the metrics written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PEOPLE = ["Anna", "Boris", "Chen", "Dana", "Emil", "Fatou", "Goran", "Hana", "Ivo", "Jun"]
CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Bonn", "Riga", "Graz", "Nara", "Cork", "Fez"]


def write_conll(path: Path, indices) -> None:
    blocks = [f"{PEOPLE[i % 10]}{i}\tB-PER\nwent\tO\nto\tO\n{CITIES[i % 10]}\tB-LOC\n.\tO" for i in indices]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def test_shiftlab_train_on_your_own_conll_files(tmp_path):
    data = tmp_path / "data"
    write_conll(data / "my-ner" / "train.conll", range(80))
    write_conll(data / "my-ner" / "test.conll", range(80, 100))
    env = {**os.environ, "SHIFTLAB_OUTPUT": str(tmp_path / "outputs"), "SHIFTLAB_DATA": str(data),
           "WANDB_MODE": "offline"}
    script = shutil.which("shiftlab-train") or str(Path(sys.executable).parent / "shiftlab-train")
    args = ["data=conll", "data.train_file=my-ner/train.conll", "data.test_file=my-ner/test.conll",
            "backbone=tiny_bert", "pretrain.max_steps=2", "pretrain.val_check_interval=2", "pretrain.batch_size=8",
            "finetune.max_epochs=1", "finetune.batch_size=8", "trainer.enable_progress_bar=false", "logger=none"]
    result = subprocess.run([script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(re.search(r"shiftlab: run directory (\S+)", result.stdout).group(1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("pretrain/val/loss", "ner/test/acc", "ner/test/entity_f1", "ner/test/majority_acc"):
        assert key in metrics and metrics[key] == metrics[key], sorted(metrics)  # present, not NaN
    config = (run_dir / "config.yaml").read_text()
    assert "run_name: my-ner-tiny_bert-token_move-token_restore" in config
    assert f"data_dir: {data}" in config  # absolute: the run directory reads the same files from anywhere
    report = json.loads((run_dir / "ner" / "reports" / "test_token_report.json").read_text())
    assert report["B-PER"]["support"] == 20 and report["O"]["support"] == 60  # the whole test file is scored
