"""Every experiments/<name>/README.md: its sweep command and its table command, run in miniature
(one seed, ``debug=smoke``) exactly as written otherwise, build a table with the columns, the rows
and the included reports of the committed RESULTS.md. So the README's commands stay true, and a
row that stops running (a failed job adds a ``failed`` column) fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.parent for p in (ROOT / "experiments").glob("*/README.md"))


def command_after(readme: str, marker: str) -> str:
    match = re.search(re.escape(marker) + r"\s*```bash\n(.*?)```", readme, re.S)
    assert match, f"no ```bash block after {marker}"
    return " ".join(line.rstrip("\\").strip() for line in match.group(1).strip().splitlines())


# Sweeps narrowed further in miniature (for time): the README's words and what the miniature runs
# instead, and which rows of the committed table the miniature's table must then have (a row's
# cells by column name -> kept). Every fine-tuning mode has its own test in
# tests/integration/test_pipeline.py, every row config composes in test_configs, and every
# policy x objective pair runs in test_catalogue_triples. peft_modes keeps both tasks and both
# backbones (the shift-pretrained rows, each pretraining once for its modes); order_objectives keeps 7 of its 14
# rows: every backbone family, the no-pretraining baseline and one row of each objective kind.
NARROWED = {
    "peft_modes": (
        [("finetune=full,frozen,lora,adalora,prefix,ia3,adapter", "finetune=full,lora"),
         ("'experiment/peft_modes/rows=glob(*)'", "experiment/peft_modes/rows=minilm_wikiann_shift,smollm2_sst2_shift")],
        lambda row: row["finetune.name"] in {"full", "lora"} and (
            row["backbone.name"], row["data.name"], row["objective.name"] == "none") in {
            ("minilm", "wikiann", False), ("smollm2", "sst2", False)},
    ),
    "order_objectives": (
        [("'experiment/order_objectives/rows=glob(*)'",
          "experiment/order_objectives/rows=bart_span_corrupt,gpt_clm_shifted,gpt_deshuffle,mlm,none,pert,"
          "shuffle_replace_detect")],
        lambda row: (row["shift.name"], row["objective.name"]) in {
            ("infill", "seq2seq_denoise"), ("token_move", "clm_shifted"), ("local_shuffle", "deshuffle"),
            ("mask", "mlm"), ("identity", "none"), ("ngram_permute", "pointer"), ("shuffle_replace", "detect")},
    ),
}
NARROWED.update({
    # chinese_pert: PERT (jieba words, pointer) on both Chinese tasks (every row composes in
    # test_configs; the word unit on Chinese is property-tested in tests/unit/test_chinese.py)
    "chinese_pert": (
        [("'experiment/chinese_pert/rows=glob(*)'", "experiment/chinese_pert/rows=pert_word")],
        lambda row: row["shift.name"] == "ngram_permute",
    ),
    # order_sensitivity: the rows without shift pretraining of each model (every row composes in
    # test_configs; the probe stage runs in tests/integration/test_probe_runs.py)
    "order_sensitivity": (
        [("'experiment/order_sensitivity/rows=glob(*)'", "experiment/order_sensitivity/rows=none")],
        lambda row: row["objective.name"] == "none",
    ),
    # headline: the shift-pretrained decoder-only row (tiny BART's headline preset runs in
    # test_experiments, the decoder-only family in tests/unit/test_causal_generation.py)
    "headline": (
        [("'experiment/headline/rows=glob(*)'", "experiment/headline/rows=gpt2_shift")],
        lambda row: (row["backbone.name"], row["objective.name"]) == ("tiny_gpt2", "deshuffle"),
    ),
})
# The shift-pretrained rows each narrowed sweep runs (each pretrains once, shared by its modes).
SHIFT_ROWS = {"peft_modes": 2}


def miniature(command: str, folder: str = "") -> str:
    command = re.sub(r"\bseed=[0-9,]+", "seed=0", command)
    for written, narrowed in NARROWED.get(folder, ([], None))[0]:
        assert written in command, f"the {folder} sweep no longer says {written!r}: update NARROWED"
        command = command.replace(written, narrowed)
    return command + " debug=smoke"


def kept_rows(markdown: str, folder: str) -> tuple[list[str], list[list[str]], list[str]]:
    header, rows, titles = structure(markdown)
    if folder in NARROWED:
        keep = NARROWED[folder][1]
        rows = [row for row in rows if keep(dict(zip(header, row)))]
        kept = {", ".join(row) for row in rows}  # an included report's title names its row's key cells
        titles = [title for title in titles if title[len("#### "):].split(": ")[0] in kept]
    return header, rows, titles


def structure(markdown: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header cells, each row's key cells, included report titles) of a shiftlab-table Markdown."""
    lines = []
    for line in markdown.splitlines():  # the first pipe table (included reports may hold more)
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, rows = cells[0], cells[2:]
    keys = header.index("n")
    titles = [line for line in markdown.splitlines() if line.startswith("#### ")]
    return header, [row[:keys] for row in rows], titles


def test_every_experiment_folder_has_its_readme_commands_and_results():
    names = {path.name for path in EXPERIMENTS}
    assert {"order_objectives", "shuffle_locality", "ner_report", "peft_modes", "translation", "chinese_pert",
            "headline", "order_sensitivity"} <= names
    for folder in EXPERIMENTS:
        readme = (folder / "README.md").read_text(encoding="utf-8")
        command_after(readme, "<!-- sweep -->"), command_after(readme, "<!-- table -->")
        assert (folder / "RESULTS.md").is_file(), folder
        assert re.search(r"Reproduced: \*\*(yes|no|partly)\*\*", readme), f"{folder}: no yes / no / partly verdict"


@pytest.mark.slow
@pytest.mark.parametrize("folder", EXPERIMENTS, ids=lambda p: p.name)
def test_readme_commands_rebuild_the_results_table_in_miniature(folder, tmp_path):
    readme = (folder / "README.md").read_text(encoding="utf-8")
    sweep, table = command_after(readme, "<!-- sweep -->"), command_after(readme, "<!-- table -->")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               SHIFTLAB_OUTPUT=str(tmp_path / "outputs"), WANDB_MODE="offline")
    for command in (miniature(sweep, folder.name), table):
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    built = (tmp_path / "experiments" / folder.name / "RESULTS.md").read_text(encoding="utf-8")
    committed = (folder / "RESULTS.md").read_text(encoding="utf-8")
    header, rows, titles = structure(built)
    assert "failed" not in header and "incomplete" not in header, built
    assert (header, rows) == kept_rows(committed, folder.name)[:2]
    if folder.name == "peft_modes":
        assert_each_pretraining_ran_once(tmp_path / "outputs" / "experiments" / "peft_modes", SHIFT_ROWS["peft_modes"])
    assert [t.split(" (seed")[0] for t in titles] == [t.split(" (seed")[0] for t in kept_rows(committed, folder.name)[2]]


def assert_each_pretraining_ran_once(sweep: Path, shift_rows: int) -> None:
    """Jobs that differ only in the fine-tuning mode share one pretraining: per shift row, at most
    one job pretrained (none, when an earlier test of the session made the same one) and the
    others reused an export."""
    import json

    import yaml

    by_row: dict[tuple, list[float]] = {}
    for metrics_file in sweep.glob("*/metrics.json"):
        config = yaml.safe_load((metrics_file.parent / "config.yaml").read_text())
        if config["objective"]["name"] == "none":
            continue
        row = (config["backbone"]["name"], config["data"]["name"], config["objective"]["name"])
        by_row.setdefault(row, []).append(json.loads(metrics_file.read_text())["pretrain/reused"])
    assert len(by_row) == shift_rows, by_row
    for row, reused in by_row.items():
        assert len(reused) > 1 and reused.count(0.0) <= 1 and set(reused) <= {0.0, 1.0}, (row, reused)
