"""What a probe leaves behind, beside the model it scored (``<run>/<task>/probe/`` by default):

* ``probe.json``: every condition's per-draw numbers and their summary (mean ± std over draws);
* ``probe.md`` / ``probe.csv`` / ``probe.tex``: the table, built by ``shiftlab-table``'s own
  aggregation (each draw is a "run", the draws are averaged as seeds are), identity first;
* ``probe.png``: the task's main metric against the fraction of tokens each condition moved,
  one line per policy and unit (error bars: std over draws);
* for a run directory, ``<run>/probe_metrics.json``: the means as flat metrics,
  ``<task>/probe/<condition>/<metric>``, which ``shiftlab-table`` reads with a run's metrics.json,
  so a sweep's probes aggregate over seeds like any test metric
  (``shiftlab-table SWEEP --metrics 'order/probe/*/acc'``).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from shiftlab.tables import build_table
from shiftlab.tables.collect import COMPLETED, Run, TableError
from shiftlab.tables.plot import plot_metric
from shiftlab.utils.io import write_json_atomic, write_text_atomic
from shiftlab.utils.run_layout import RunLayout

from .runner import ProbeResult

ROW_KEYS = ["policy", "unit", "setting", "moved"]


def main_metric(result: ProbeResult) -> str:
    return "entity_f1" if result.target.family == "tagging" else "acc"


def table_metrics(result: ProbeResult) -> list[str]:
    main = main_metric(result)
    names = [main, f"{main}_drop"]
    if main != "acc":
        names += ["acc", "acc_drop"]
    names += ["acceptance"] + (["right_only"] if result.target.family == "classification" else [])
    return names


def summary(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def to_json(result: ProbeResult) -> dict:
    target = result.target
    conditions = []
    for item in result.results:
        names = list(item.draws[0])
        conditions.append({
            "name": item.condition.name, "spec": item.condition.spec(), "policy": item.condition.policy,
            "params": dict(item.condition.params), "unit": None if item.condition.is_identity else item.condition.unit,
            "draws": item.draws, "summary": {name: summary([d[name] for d in item.draws]) for name in names},
            "right_only": item.right_only,
        })
    return {
        "task": target.task, "family": target.family, "labels": target.label_names, "source": target.source,
        "seed": result.seed, "draws": result.draws, "examples": result.examples, "main_metric": main_metric(result),
        "reference": target.reference, "skipped": result.skipped, "conditions": conditions,
    }


def draw_runs(result: ProbeResult) -> list[Run]:
    """Each draw of each condition as a table "run" (its config: policy, unit, setting, moved, draw)."""
    runs = []
    for item in result.results:
        condition = item.condition
        moved = round(statistics.fmean(d["moved"] for d in item.draws), 3)
        config = {"policy": condition.policy, "moved": moved, "condition": condition.name}
        if not condition.is_identity:
            config["unit"] = condition.unit
        if condition.setting:
            config["setting"] = condition.setting
        for draw, metrics in enumerate(item.draws):
            extra = {} if item.right_only is None else {"right_only": item.right_only}
            runs.append(Run(path=Path(condition.name), label=f"{condition.name} (draw {draw})",
                            config={**config, "draw": draw}, status=COMPLETED, metrics={**metrics, **extra}))
    return runs


def probe_table(result: ProbeResult, precision: int = 3):
    runs = draw_runs(result)
    table = build_table(runs, rows=_present(runs, ROW_KEYS), metrics=table_metrics(result), seed_key="draw",
                        lower=["*_drop"], higher=["acceptance", "right_only"], precision=precision)
    table.over = "draws"
    order = {item.condition.name: i for i, item in enumerate(result.results)}
    table.rows.sort(key=lambda row: order[row.runs[0].config["condition"]])
    for row in table.rows:  # one number per condition, not a spread over draws
        if "right_only" in row.cells:
            row.cells["right_only"].std = None
    return table


def _present(runs: list[Run], keys: list[str]) -> list[str]:
    """The keys some run's config has (a grid without parameters has no ``setting``)."""
    return [key for key in keys if any(key in run.config for run in runs)]


def write_probe(result: ProbeResult, out_dir: str | Path, *, plot: bool = True) -> list[Path]:
    """Write probe.json, the table (md, csv, tex) and the plot under ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    written = [write_json_atomic(out_dir / "probe.json", to_json(result))]
    table = probe_table(result)
    title = (f"{result.target.task}: {result.examples} test examples, {result.draws} draws per condition, "
             f"seed {result.seed}")
    skipped = "".join(f"\n- left out: {line}" for line in result.skipped)
    written.append(write_text_atomic(out_dir / "probe.md", f"# Word-order probe — {title}\n\n{table.to_markdown()}{skipped}\n"))
    written.append(write_text_atomic(out_dir / "probe.csv", table.to_csv()))
    written.append(write_text_atomic(out_dir / "probe.tex", table.to_latex()))
    if plot:
        runs = draw_runs(result)
        try:
            made = plot_metric(runs, out_dir / "probe.png", x="moved", metric=main_metric(result),
                               line=_present(runs, ["policy", "unit"]), seed_key="draw", title=f"{result.target.task}: {title}")
            written.append(made.path)
        except TableError as error:  # matplotlib missing: the tables are still there
            written.append(write_text_atomic(out_dir / "probe.png.txt", f"no plot: {error}\n"))
    return written


def record_in_run(result: ProbeResult, run_dir: str | Path) -> Path:
    """Merge this probe's means into ``<run>/probe_metrics.json``: its conditions' entries are
    replaced, other conditions' and other tasks' stay (a later ``--only`` probe adds to a grid)."""
    path = RunLayout(run_dir).probe_metrics
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    for item in result.results:
        prefix = f"{result.target.task}/probe/{item.condition.name}/"
        metrics = {key: value for key, value in metrics.items() if not key.startswith(prefix)}
        for name in item.draws[0]:
            metrics[f"{prefix}{name}"] = statistics.fmean(d[name] for d in item.draws)
        if item.right_only is not None:
            metrics[f"{prefix}right_only"] = item.right_only
    return write_json_atomic(path, metrics)
