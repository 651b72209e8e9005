"""shiftlab-table (shiftlab.tables): sweep directories -> Markdown / LaTeX / CSV tables and a plot.

Every sweep here is written by hand in tmp_path (config.yaml, metrics.json, run_info.json,
failure.json, as shiftlab-train writes them), with numbers whose means and stds are worked out
in the test; no training runs.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import statistics
from pathlib import Path

import pytest
import yaml

import shiftlab.utils.io as io_module
from shiftlab.tables import (
    COMPLETED,
    FAILED,
    INCOMPLETE,
    MISSING,
    TableError,
    build_table,
    collect_runs,
    default_row_keys,
    plot_metric,
)
from shiftlab.tables.cli import main
from shiftlab.tables.table import latex_escape

# identity: acc 0.82 ± 0.02, loss 0.52 ± 0.02; token_move: acc 0.86 ± 0.01, loss 0.53 ± 0.01
ACC = {"identity": [0.80, 0.82, 0.84], "token_move": [0.85, 0.86, 0.87]}
LOSS = {"identity": [0.50, 0.52, 0.54], "token_move": [0.52, 0.53, 0.54]}


def write_run(directory: Path, *, shift: str = "identity", seed: int = 0, metrics: dict | None = None,
              failure: dict | None = None, status: str | None = None, rate: float | None = None,
              objective: str = "token_restore", extra: dict | None = None) -> Path:
    """A job directory as shiftlab-train leaves it: config.yaml, run_info.json, and metrics.json
    (completed) or failure.json (failed) or neither (killed / running)."""
    directory.mkdir(parents=True)
    config = {
        "backbone": {"name": "tiny_bert", "kind": "encoder"},
        "data": {"name": "synthetic", "corpus": {"seed": 0}},
        "shift": {"name": shift, "params": {} if rate is None else {"rate": rate, "unit": "word"}},
        "objective": {"name": objective},
        "paths": {"output_root": str(directory.parent)},
        "seed": seed,
        "run_name": f"tiny_bert-{shift}-{objective}",
        "run_group": f"sweep-{directory.parent.name}",
        **(extra or {}),
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if status is None:
        status = "completed" if metrics is not None else "failed" if failure is not None else "running"
    num = int(directory.name.split("_")[0]) if "_" in directory.name else None
    info = {"status": status, "seed": seed, "command": "shiftlab-train -m ...",
            "job": {"num": num, "overrides": [f"shift={shift}", f"seed={seed}"], "sweep_dir": str(directory.parent)}}
    (directory / "run_info.json").write_text(json.dumps(info), encoding="utf-8")
    if metrics is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if failure is not None:
        (directory / "failure.json").write_text(json.dumps({"status": "failed", **failure}), encoding="utf-8")
    return directory


def write_sweep(root: Path, order=("identity", "token_move")) -> Path:
    """2 shift policies x 3 seeds, all completed; plus metrics a default table leaves out."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("hydra: {}\n", encoding="utf-8")
    for shift in order:
        base = 0 if shift == "identity" else 3
        for seed in range(3):
            write_run(root / f"{base + seed}_x{base + seed}", shift=shift, seed=seed,
                      rate=None if shift == "identity" else 0.15,
                      metrics={"order/test/acc": ACC[shift][seed], "order/test/loss": LOSS[shift][seed],
                               "order/val/acc": 0.5, "order/time_s": 1.0 + seed,
                               "order/trainable_params": 1000.0})
    return root


EXPECTED_MD = """\
| shift.name |   n |  order/test/acc ↑ | order/test/loss ↓ |
| :--------- | --: | ----------------: | ----------------: |
| identity   |   3 |     0.820 ± 0.020 | **0.520 ± 0.020** |
| token_move |   3 | **0.860 ± 0.010** |    0.530 ± 0.010† |

Mean ± sample std over seeds (no std when n = 1); n: completed runs (a cell's own n in parentheses \
when a metric is missing); ↑/↓: higher/lower is better. **Bold**: best in the column. †: within noise \
of the best (|best mean − mean| ≤ the larger of the two stds).
"""

EXPECTED_CSV = """\
shift.name,n,failed,incomplete,order/test/acc:mean,order/test/acc:std,order/test/acc:n,\
order/test/loss:mean,order/test/loss:std,order/test/loss:n
identity,3,0,0,{},{},3,{},{},3
token_move,3,0,0,{},{},3,{},{},3
""".format(*(repr(f(v)) for shift in ("identity", "token_move") for v in (ACC[shift], LOSS[shift])
             for f in (statistics.fmean, statistics.stdev)))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path / "multirun" / "2026-11-28" / "22-32-56-666920")


def test_markdown_exact_with_defaults(sweep: Path) -> None:
    table = build_table(collect_runs([sweep]))
    assert table.row_keys == ["shift.name"]  # shift.params.* follow shift.name; seed, run_name ignored
    assert table.metrics == ["order/test/acc", "order/test/loss"]  # */test/* only
    assert table.to_markdown() == EXPECTED_MD


def test_csv_exact_and_unrounded(sweep: Path) -> None:
    table = build_table(collect_runs([sweep]))
    assert table.to_csv() == EXPECTED_CSV
    identity = next(csv.DictReader(io.StringIO(table.to_csv())))
    assert float(identity["order/test/acc:std"]) == statistics.stdev(ACC["identity"])  # unrounded
    assert identity["order/test/acc:std"] == repr(statistics.stdev(ACC["identity"]))  # not "0.020"


def test_mean_std_n(sweep: Path) -> None:
    table = build_table(collect_runs([sweep]), rows=["shift.name"], metrics=["order/test/acc", "order/test/loss"])
    identity, token_move = table.rows
    assert identity.values == ("identity",) and token_move.values == ("token_move",)
    assert identity.n == 3 and token_move.n == 3
    acc = identity.cells["order/test/acc"]
    assert acc.n == 3
    assert acc.mean == pytest.approx(0.82, abs=1e-12)
    assert acc.std == pytest.approx(0.02, abs=1e-12)  # sample std (ddof=1); the population std is 0.0163
    assert token_move.cells["order/test/loss"].std == pytest.approx(0.01, abs=1e-12)
    # best: highest acc, lowest loss; token_move's loss is 0.01 from the best, within max(0.02, 0.01)
    assert token_move.cells["order/test/acc"].best and not identity.cells["order/test/acc"].best
    assert not identity.cells["order/test/acc"].within_noise  # 0.04 apart, stds 0.01 / 0.02
    assert identity.cells["order/test/loss"].best
    assert token_move.cells["order/test/loss"].within_noise
    assert table.lower_is_better == {"order/test/acc": False, "order/test/loss": True}
    records = table.records()
    assert records[0]["shift.name"] == "identity" and records[0]["order/test/acc:n"] == 3


def test_within_noise_rule(tmp_path: Path) -> None:
    """† iff |best mean - mean| <= max(std of the best, std of the row)."""
    values = {
        "a": [0.85, 0.90, 0.95],  # best: 0.90 ± 0.05
        "b": [0.86, 0.87, 0.88],  # 0.87 ± 0.01: 0.03 from the best, within the best's std
        "c": [0.70, 0.82, 0.94],  # 0.82 ± 0.12: 0.08 from the best, within its own std
        "d": [0.83, 0.84, 0.85],  # 0.84 ± 0.01: 0.06 from the best, more than both stds
    }
    num = 0
    for variant, accs in values.items():
        for seed, acc in enumerate(accs):
            write_run(tmp_path / "sweep" / f"{num}_v", seed=seed, metrics={"task/test/acc": acc},
                      extra={"variant": variant})
            num += 1
    table = build_table(collect_runs([tmp_path / "sweep"]))
    assert table.row_keys == ["variant"]
    marks = {row.values[0]: (row.cells["task/test/acc"].best, row.cells["task/test/acc"].within_noise)
             for row in table.rows}
    assert marks == {"a": (True, False), "b": (False, True), "c": (False, True), "d": (False, False)}
    # every row tied: nothing to point out
    for num, variant in enumerate("xy"):
        write_run(tmp_path / "tied" / f"{num}_t", metrics={"task/test/acc": 0.5}, extra={"variant": variant})
    tied = build_table(collect_runs([tmp_path / "tied"]))
    assert [(row.cells["task/test/acc"].best, row.cells["task/test/acc"].within_noise) for row in tied.rows] == [
        (False, False), (False, False)]
    assert "**" not in tied.to_markdown()


def test_failed_incomplete_and_missing_are_reported(sweep: Path, capsys) -> None:
    write_run(sweep / "6_failed", shift="identity", seed=3,
              failure={"stage": "pretrain", "error": "RuntimeError", "message": "CUDA out of memory\nmore",
                       "traceback": "Traceback ..."})
    write_run(sweep / "7_killed", shift="token_move", seed=3, rate=0.15)  # config.yaml only: killed / running
    metrics = json.loads((sweep / "5_x5" / "metrics.json").read_text())
    del metrics["order/test/loss"]
    (sweep / "5_x5" / "metrics.json").write_text(json.dumps(metrics))

    runs = collect_runs([sweep])
    status = {run.label: run.status for run in runs}
    assert status["6_failed"] == FAILED and status["7_killed"] == INCOMPLETE and status["0_x0"] == COMPLETED
    table = build_table(runs)
    assert [(row.n, row.failed, row.incomplete) for row in table.rows] == [(3, 1, 0), (3, 0, 1)]
    loss = table.rows[1].cells["order/test/loss"]
    assert loss.n == 2 and loss.mean == pytest.approx(0.525)

    assert table.to_markdown() == """\
| shift.name |   n | failed | incomplete |  order/test/acc ↑ |    order/test/loss ↓ |
| :--------- | --: | -----: | ---------: | ----------------: | -------------------: |
| identity   |   3 |      1 |          0 |     0.820 ± 0.020 |    **0.520 ± 0.020** |
| token_move |   3 |      0 |          1 | **0.860 ± 0.010** | 0.525 ± 0.007 (n=2)† |

Mean ± sample std over seeds (no std when n = 1); n: completed runs (a cell's own n in parentheses \
when a metric is missing); ↑/↓: higher/lower is better. **Bold**: best in the column. †: within noise \
of the best (|best mean − mean| ≤ the larger of the two stds).

Failed runs (not in the means):
- `6_failed` (shift.name=identity, seed=3): stage pretrain: RuntimeError: CUDA out of memory

Incomplete runs (killed, or still running; not in the means):
- `7_killed` (shift.name=token_move, seed=3): neither metrics.json nor failure.json; run_info.json status: running

Missing metrics:
- metric order/test/loss missing in run `5_x5` (shift.name=token_move, seed=2)
"""
    latex = table.to_latex()
    assert "% - 6_failed (shift.name=identity, seed=3): stage pretrain: RuntimeError: CUDA out of memory\n" in latex
    assert r"token\_move & 3 & 0 & 1 & \textbf{0.860 $\pm$ 0.010} & 0.525 $\pm$ 0.007 (n=2)$^{\dagger}$ \\" in latex

    assert main([str(sweep)]) == 0
    err = capsys.readouterr().err
    assert "warning: failed run: 6_failed" in err and "pretrain" in err and "RuntimeError" in err
    assert "warning: incomplete run: 7_killed" in err
    assert "missing in run 5_x5" in err
    assert main([str(sweep), "--strict"]) == 1


def test_markdown_columns_line_up_with_wide_cells(sweep: Path) -> None:
    write_run(sweep / "6_failed", shift="identity", seed=3, failure={"stage": "order", "error": "ValueError"})
    lines = build_table(collect_runs([sweep])).to_markdown().splitlines()
    table_lines = lines[: lines.index("")]
    assert len({len(line) for line in table_lines}) == 1
    assert all(line.startswith("| ") and line.endswith(" |") for line in table_lines)


def test_single_seed_and_dash_for_missing_row_key(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    write_run(root / "0_a", shift="identity", seed=0, metrics={"order/test/acc": 0.5})
    write_run(root / "1_b", shift="token_move", seed=0, rate=0.1, metrics={"order/test/acc": 0.6})
    write_run(root / "2_c", shift="token_move", seed=0, rate=0.2, metrics={"order/test/acc": 0.7})
    runs = collect_runs([root])
    assert default_row_keys(runs) == ["shift.name", "shift.params.rate"]
    table = build_table(runs, rows=["shift.params.rate"])
    assert [row.values for row in table.rows] == [(MISSING,), (0.1,), (0.2,)]  # missing first, then numeric
    # n = 1: no std, and no noise estimate, so nothing is within noise of the best
    assert table.to_markdown().split("\n\n")[0] == """\
| shift.params.rate |   n | order/test/acc ↑ |
| :---------------- | --: | ---------------: |
| —                 |   1 |            0.500 |
| 0.1               |   1 |            0.600 |
| 0.2               |   1 |        **0.700** |"""
    assert table.to_csv().splitlines()[1:] == [",1,0,0,0.5,,1", "0.1,1,0,0,0.6,,1", "0.2,1,0,0,0.7,,1"]


def test_default_rows_leave_out_keys_that_follow_the_seed(tmp_path: Path) -> None:
    for num, (shift, seed) in enumerate([("identity", 0), ("identity", 1), ("token_move", 0), ("token_move", 1)]):
        write_run(tmp_path / "sweep" / f"{num}_s", shift=shift, seed=seed, rate=None if shift == "identity" else 0.3,
                  metrics={"order/test/acc": 0.5}, extra={"data": {"name": "synthetic", "corpus": {"seed": seed}}})
    runs = collect_runs([tmp_path / "sweep"])
    assert default_row_keys(runs) == ["shift.name"]  # not data.corpus.seed (= seed), nor shift.params.*
    assert [row.n for row in build_table(runs).rows] == [2, 2]


def test_numeric_row_keys_sort_numerically(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    for i, n in enumerate([10, 2, 1]):
        write_run(root / f"{i}_r", seed=0, metrics={"order/test/acc": n / 100}, extra={"ngram": n})
    table = build_table(collect_runs([root]), rows=["ngram"])
    assert [row.values for row in table.rows] == [(1,), (2,), (10,)]


def test_unknown_row_key_is_an_error_naming_key_run_and_keys(sweep: Path) -> None:
    with pytest.raises(TableError) as error:
        build_table(collect_runs([sweep]), rows=["shfit.name"])
    message = str(error.value)
    assert "'shfit.name'" in message and str(sweep / "0_x0" / "config.yaml") in message
    assert "backbone, data, objective, paths, run_group, run_name, seed, shift" in message
    with pytest.raises(TableError, match="'rte' is not a key under 'shift.params'"):
        build_table(collect_runs([sweep / "3_x3"]), rows=["shift.params.rte"])


def test_metric_patterns_and_unknown_metric(sweep: Path, capsys) -> None:
    runs = collect_runs([sweep])
    assert build_table(runs, metrics=["*/test/loss", "order/*/acc"]).metrics == [
        "order/test/loss", "order/test/acc", "order/val/acc"]
    with pytest.raises(TableError) as error:
        build_table(runs, metrics=["order/test/acx"])
    message = str(error.value)
    assert "'order/test/acx'" in message and "did you mean order/test/acc" in message
    assert "available metrics: order/test/acc, order/test/loss, order/time_s" in message
    assert main([str(sweep), "--metrics", "nope/*"]) == 2
    assert "available metrics" in capsys.readouterr().err
    # --lower / --higher override the name rule
    table = build_table(runs, metrics=["order/test/acc"], lower=["order/test/acc"])
    assert table.rows[0].cells["order/test/acc"].best


def test_latex_booktabs_and_escaping(sweep: Path) -> None:
    latex = build_table(collect_runs([sweep])).to_latex()
    lines = latex.splitlines()
    assert r"\begin{tabular}{lrrr}" in lines
    assert [line for line in lines if line in (r"\toprule", r"\midrule", r"\bottomrule")] == [
        r"\toprule", r"\midrule", r"\bottomrule"]
    assert r"token\_move & 3 & \textbf{0.860 $\pm$ 0.010} & 0.530 $\pm$ 0.010$^{\dagger}$ \\" in lines
    assert r"shift.name & n & order/test/acc $\uparrow$ & order/test/loss $\downarrow$ \\" in lines
    assert "±" not in latex and "token_move" not in latex
    assert latex_escape("50% & #1_a ±") == r"50\% \& \#1\_a $\pm$"


def test_deterministic_whatever_the_creation_order(tmp_path: Path) -> None:
    one = write_sweep(tmp_path / "a" / "sweep", order=("identity", "token_move"))
    two = write_sweep(tmp_path / "b" / "sweep", order=("token_move", "identity"))
    outputs = [(t.to_markdown(), t.to_latex(), t.to_csv())
               for t in (build_table(collect_runs([p])) for p in (one, one, two))]
    assert outputs[0] == outputs[1] == outputs[2]


def test_cli_writes_all_formats_atomically(sweep: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src).name, Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(io_module.os, "replace", spy)
    prefix = tmp_path / "paper" / "shift_policies"
    assert main([str(sweep), "--format", "all", "--out", str(prefix)]) == 0
    table = build_table(collect_runs([sweep]))
    assert (tmp_path / "paper" / "shift_policies.md").read_text(encoding="utf-8") == table.to_markdown()
    assert (tmp_path / "paper" / "shift_policies.tex").read_text(encoding="utf-8") == table.to_latex()
    assert (tmp_path / "paper" / "shift_policies.csv").read_text(encoding="utf-8") == EXPECTED_CSV
    assert [dst.name for _, dst in replaced] == ["shift_policies.md", "shift_policies.tex", "shift_policies.csv"]
    assert all(src.startswith(".shift_policies.") and src.endswith(".tmp") for src, _ in replaced)
    assert sorted(p.name for p in (tmp_path / "paper").iterdir()) == [
        "shift_policies.csv", "shift_policies.md", "shift_policies.tex"]  # no temp file left
    captured = capsys.readouterr()
    assert captured.out == "" and "wrote" in captured.err

    assert main([str(sweep), "--format", "md", "--out", str(tmp_path / "t.md")]) == 0  # not t.md.md
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == EXPECTED_MD


def test_cli_stdout_is_markdown_and_deterministic(sweep: Path, capsys) -> None:
    assert main([str(sweep)]) == 0
    first = capsys.readouterr()
    assert main([str(sweep)]) == 0
    second = capsys.readouterr()
    assert first.out == second.out == EXPECTED_MD
    assert first.err == ""
    assert main([str(sweep), "--format", "csv"]) == 0
    assert capsys.readouterr().out == EXPECTED_CSV


def test_cli_exit_2_on_missing_or_empty_path(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    assert main([str(empty)]) == 2
    assert f"{empty}: no runs found" in capsys.readouterr().err
    assert main([str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: no such file or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(empty), "--plot", "x.png"])  # --plot without --x: a usage error
    assert exit_info.value.code == 2


def test_single_run_dirs_and_no_descent_into_runs(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs" / "2026-11-28" / "10-00-00", seed=0, metrics={"order/test/acc": 0.5})
    write_run(run / "order" / "nested", seed=1, metrics={"order/test/acc": 0.9})  # inside a run: not a run
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    runs = collect_runs([tmp_path / "runs"])
    assert [(r.label, r.path) for r in runs] == [("2026-11-28/10-00-00", run.resolve())]
    assert collect_runs([run / "metrics.json"])[0].path == run.resolve()  # a run's file names its run
    table = build_table(runs)
    assert table.row_keys == [] and table.to_markdown().startswith("| runs |   n | order/test/acc ↑ |")
    # the same sweep given twice is counted once
    assert len(collect_runs([tmp_path / "runs", run])) == 1


def test_warnings_for_duplicate_seeds_and_mixed_configs(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    write_run(root / "0_a", shift="identity", seed=0, metrics={"order/test/acc": 0.5})
    write_run(root / "1_b", shift="token_move", seed=0, metrics={"order/test/acc": 0.6})
    table = build_table(collect_runs([root]), rows=["objective.name"])
    assert any("seed=0 in 2 completed runs (0_a, 1_b)" in w for w in table.warnings)
    assert any("differ in: shift.name" in w for w in table.warnings)


def test_wandb_offline_run(tmp_path: Path) -> None:
    run = tmp_path / "wandb" / "offline-run-20261128_223300-abc123"
    (run / "files").mkdir(parents=True)
    (run / "files" / "config.yaml").write_text(yaml.safe_dump({
        "wandb_version": 1,
        "_wandb": {"desc": None, "value": {"cli_version": "0.31.0"}},
        "shift": {"desc": None, "value": {"name": "token_move", "params": {"rate": 0.15}}},
        "seed": {"value": 4},
    }))
    (run / "files" / "wandb-summary.json").write_text(json.dumps(
        {"order-test/acc": 0.75, "_runtime": 3.2, "_step": 10, "trainer/global_step": 10, "media": {"x": 1}}))
    (tmp_path / "wandb" / "offline-run-20261128_223400-def456" / "files").mkdir(parents=True)  # no summary yet
    (tmp_path / "wandb" / "latest-run").symlink_to(run)  # W&B's link to the last run: not counted twice

    runs = collect_runs([tmp_path / "wandb"])
    assert [(r.source, r.status) for r in runs] == [("wandb", COMPLETED), ("wandb", INCOMPLETE)]
    assert runs[0].config == {"shift": {"name": "token_move", "params": {"rate": 0.15}}, "seed": 4}
    assert runs[0].metrics == {"order/test/acc": 0.75, "trainer/global_step": 10}
    table = build_table(runs[:1], rows=["shift.name"], metrics=["order/test/acc"])
    assert table.rows[0].cells["order/test/acc"].mean == 0.75


def test_list(sweep: Path, capsys) -> None:
    assert main([str(sweep), "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 runs: 6 completed, 0 failed, 0 incomplete\n")
    assert "config keys that differ (default --rows: shift.name):" in out
    assert "  shift.params.rate: —, 0.15\n" in out and "  order/time_s\n" in out


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot_writes_png(tmp_path: Path, capsys) -> None:
    root = tmp_path / "sweep"
    num = 0
    for shift in ("token_move", "span_swap"):
        for rate in (0.1, 0.2, 0.3):
            for seed in range(2):
                write_run(root / f"{num}_p", shift=shift, seed=seed, rate=rate,
                          metrics={"order/test/acc": 0.5 + rate + 0.01 * seed})
                num += 1
    write_run(root / f"{num}_p", shift="identity", seed=0, metrics={"order/test/acc": 0.5})
    png = tmp_path / "plots" / "rate.png"
    plot = plot_metric(collect_runs([root]), png, x="shift.params.rate", line=["shift.name"], metric="order/test/acc")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert plot.skipped == ["shift.name=identity, shift.params.rate=—: no shift.params.rate in the config "
                            "(give --x-missing to place it)"]
    assert [p.name for p in png.parent.iterdir()] == ["rate.png"]  # written atomically, no temp file left

    out = tmp_path / "cli.png"
    assert main([str(root), "--metrics", "order/test/acc", "--plot", str(out), "--x", "shift.params.rate",
                 "--line", "shift.name", "--x-missing", "0"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "wrote" in capsys.readouterr().err
    assert main([str(root), "--plot", str(out), "--x", "shift.name"]) == 2  # not numeric


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot_lines_default_to_the_tables_other_row_keys(tmp_path: Path, monkeypatch) -> None:
    """A reference row (here identity, rate 0.1) at an x where the sweep also has a point stays its own
    line: without --line the plot splits by the table's row keys other than --x, instead of
    averaging the two rows into one point."""
    import shiftlab.tables.plot as plot_module

    root = tmp_path / "sweep"
    for num, (shift, rate, acc) in enumerate([("token_move", 0.1, 0.9), ("token_move", 0.2, 0.95),
                                              ("identity", 0.1, 0.5)]):
        write_run(root / f"{num}_p", shift=shift, seed=0, rate=rate, metrics={"order/test/acc": acc})
    made = []
    real = plot_module.plot_metric
    monkeypatch.setattr(plot_module, "plot_metric", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    out = tmp_path / "lines.png"
    assert main([str(root), "--rows", "shift.name", "shift.params.rate", "--metrics", "order/test/acc",
                 "--plot", str(out), "--x", "shift.params.rate"]) == 0
    points = {tuple(row.values): row.cells["order/test/acc"].mean for row in made[0].table.rows}
    assert points == {("identity", 0.1): 0.5, ("token_move", 0.1): 0.9, ("token_move", 0.2): 0.95}
    assert main([str(root), "--rows", "shift.params.rate", "--metrics", "order/test/acc",
                 "--plot", str(out), "--x", "shift.params.rate"]) == 0  # rows that are x alone: one line
    assert {tuple(row.values): row.cells["order/test/acc"].mean for row in made[1].table.rows} == {
        (0.1,): pytest.approx(0.7), (0.2,): 0.95}


def test_include_shows_each_rows_report_from_its_lowest_seed(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "sweep")
    for job in sorted(sweep.iterdir()):
        if job.is_dir():
            info = json.loads((job / "run_info.json").read_text())
            (job / "ner" / "reports").mkdir(parents=True)
            (job / "ner" / "reports" / "token_report.txt").write_text(f"report of {job.name} seed {info['seed']}\n")
    assert main([str(sweep), "--rows", "shift.name", "--metrics", "order/test/acc",
                 "--include", "ner/reports/*.txt"]) == 0
    out = capsys.readouterr().out
    assert "#### identity: ner/reports/token_report.txt (seed 0)\n\n```\nreport of 0_x0 seed 0\n```" in out
    assert "#### token_move: ner/reports/token_report.txt (seed 0)\n\n```\nreport of 3_x3 seed 0\n```" in out
    assert "seed 1" not in out.split("####", 1)[1]  # one run per row: its lowest seed


def test_a_metric_a_whole_row_does_not_report_is_one_note_not_one_per_run(tmp_path: Path, capsys) -> None:
    # a sweep mixing tasks: the identity row has only accuracy, the token_move row only entity F1
    for seed in (0, 1):
        write_run(tmp_path / f"a{seed}", shift="identity", seed=seed, metrics={"order/test/acc": 0.8 + seed / 10})
        write_run(tmp_path / f"b{seed}", shift="token_move", seed=seed, metrics={"ner/test/entity_f1": 0.5})
    table = build_table(collect_runs([tmp_path]), metrics=["order/test/acc", "ner/test/entity_f1"])
    assert [(issue.kind, issue.metric) for issue in table.issues] == [
        ("absent", "ner/test/entity_f1"), ("absent", "order/test/acc")]
    assert table.issues[0].describe() == "metric ner/test/entity_f1 is reported by no run of 1 row (shift.name): identity"
    markdown = table.to_markdown()
    assert "Metrics that whole rows do not report (— in the table):" in markdown and "missing in run" not in markdown
    assert table.rows[0].cells["order/test/acc"].mean == pytest.approx(0.85)
    assert table.rows[0].cells["ner/test/entity_f1"].n == 0
    assert main([str(tmp_path), "--metrics", "order/test/acc", "ner/test/entity_f1", "--strict"]) == 1
    assert "reported by no run of 1 row" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "NaN", "Infinity"])
def test_a_run_with_a_non_finite_metric_counts_as_failed_in_every_column(tmp_path: Path, bad, capsys) -> None:
    # seed 1 of token_move diverged: a NaN loss beside a plausible accuracy
    sweep = write_sweep(tmp_path / "sweep")
    metrics = json.loads((sweep / "4_x4" / "metrics.json").read_text())
    metrics["order/test/loss"] = bad
    (sweep / "4_x4" / "metrics.json").write_text(json.dumps(metrics))  # Python's json: a bare NaN / Infinity

    runs = collect_runs([sweep])
    assert {run.label: run.status for run in runs}["4_x4"] == COMPLETED  # metrics.json was written
    table = build_table(runs)
    identity, token_move = table.rows
    assert [(row.n, row.failed, row.incomplete) for row in table.rows] == [(3, 0, 0), (2, 1, 0)]
    others = [0, 2]  # the seeds that did not diverge
    for metric, values in (("order/test/acc", ACC), ("order/test/loss", LOSS)):
        cell = token_move.cells[metric]
        assert cell.n == 2 and cell.values == [values["token_move"][s] for s in others]
        assert cell.mean == pytest.approx(statistics.fmean(values["token_move"][s] for s in others))
        assert identity.cells[metric].n == 3
    assert [(issue.kind, issue.run.label) for issue in table.issues] == [(FAILED, "4_x4")]
    shown = str(bad)
    assert table.issues[0].describe() == (f"4_x4 (shift.name=token_move, seed=1): non-finite metric "
                                          f"order/test/loss ({shown})")
    assert next(run for run in runs if run.label == "4_x4").status == COMPLETED  # the runs given are left as they are

    markdown = table.to_markdown()
    assert "| token_move |   2 |      1 | **0.860 ± 0.014** |" in markdown
    assert ("Failed runs (not in the means):\n- `4_x4` (shift.name=token_move, seed=1): non-finite metric "
            f"order/test/loss ({shown})\n") in markdown
    assert "nan" not in markdown.split("Failed runs")[0].lower()
    assert "% - 4_x4 (shift.name=token_move, seed=1): non-finite metric order/test/loss" in table.to_latex()
    assert "token_move,2,1,0," in table.to_csv()

    # a metric the table does not show does not fail the run
    only_acc = build_table(runs, metrics=["order/test/acc"])
    assert [(row.n, row.failed) for row in only_acc.rows] == [(3, 0), (3, 0)] and not only_acc.issues

    assert main([str(sweep), "--strict"]) == 1
    assert "warning: failed run: 4_x4 (shift.name=token_move, seed=1): non-finite metric order/test/loss" in (
        capsys.readouterr().err)
