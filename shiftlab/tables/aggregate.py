"""Group runs into table rows, average each metric over the seeds, mark the best.

* A row is one combination of values of the row keys (dotted config keys); all the runs that
  share it (normally: the seeds) are aggregated: mean, sample std (``ddof=1``; none when n = 1)
  and n, from the *completed* runs only. Failed and incomplete runs are counted per row and
  listed in :attr:`Table.issues`; so is a metric missing from (or not a number in) a completed
  run's metrics.json.
* A completed run with a NaN or infinite value (also the strings ``"NaN"``, ``"Infinity"``) in
  one of the table's metrics diverged: it counts as *failed* in its row ("non-finite metric
  <name>"), left out of every metric's mean, not only that one's.
* A row key missing from some runs' configs (``shift.params.rate`` of the ``identity`` policy)
  is a value of its own, shown as ``—``; a key missing from *every* run is an error (a typo).
* Rows are sorted by their key values: missing first, then numbers numerically, then strings.
* Best: per metric column, the highest mean (the lowest for lower-is-better metrics: names
  ending in ``loss``, ``time_s``, ``ppl`` or ``perplexity``, or matched by ``lower``); ties are
  all best, unless every row ties (then nothing is marked). Within noise of the best:
  ``|best mean - mean| <= max(std of the best, std of the row)``, a std taken as 0 when n = 1
  (one run says nothing about noise). Nothing is marked in a column with fewer than two values.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from .collect import FAILED, INCOMPLETE, MISSING, Run, TableError, describe_missing_key, flatten, is_non_finite
from .table import Cell, Issue, Row, Table
from .values import format_value, value_key

__all__ = [
    "Cell",
    "Issue",
    "Row",
    "Table",
    "available_metrics",
    "build_table",
    "default_row_keys",
    "differing_keys",
    "format_value",
    "is_lower_better",
    "resolve_metrics",
]

#: Config keys (and their subtrees) that never make rows: run names, paths, resume state, logging.
IGNORED_KEYS = ("run_name", "run_group", "ckpt_path", "paths", "hydra", "logger", "callbacks")

#: Metrics left out of the default selection (``*/test/*``).
DEFAULT_METRIC_PATTERN = "*/test/*"
DEFAULT_METRIC_EXCLUDE = ("*time_s", "*params", "*trainable_fraction")

LOWER_IS_BETTER_SUFFIXES = ("loss", "time_s", "ppl", "perplexity")

_GLOB_CHARS = set("*?[")


def _ignored(key: str, seed_key: str) -> bool:
    return key == seed_key or any(key == name or key.startswith(name + ".") for name in IGNORED_KEYS)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------- rows


def differing_keys(runs: Sequence[Run], seed_key: str = "seed") -> dict[str, list[Any]]:
    """Config keys whose value is not the same in all runs, with their distinct values (sorted),
    in config order; the seed key and :data:`IGNORED_KEYS` left out."""
    flats = [flatten(run.config) for run in runs]
    order: dict[str, None] = {}
    for flat in flats:
        order.update(dict.fromkeys(flat))
    result = {}
    for key in order:
        if _ignored(key, seed_key):
            continue
        values = {value_key(flat.get(key, MISSING)): flat.get(key, MISSING) for flat in flats}
        if len(values) > 1:
            result[key] = [values[k] for k in sorted(values)]
    return result


def default_row_keys(runs: Sequence[Run], seed_key: str = "seed") -> list[str]:
    """The config keys that tell the runs' configurations apart, seed aside.

    Of the keys that differ between runs (:func:`differing_keys`), in config order, a key is kept
    only when it splits runs the keys kept before it do not: ``shift.params.*`` goes when
    ``shift.name`` already determines it. A key equal to the seed in every run (a data seed
    set to ``${seed}``) is left out too.
    """
    seeds = [run.get(seed_key) for run in runs]
    several_seeds = len({value_key(s) for s in seeds}) > 1
    groups: list[tuple] = [() for _ in runs]
    kept: list[str] = []
    for key in differing_keys(runs, seed_key):
        values = [run.get(key) for run in runs]
        if several_seeds and all(value_key(v) == value_key(s) for v, s in zip(values, seeds)):
            continue
        split = [group + (value_key(value),) for group, value in zip(groups, values)]
        if len(set(split)) > len(set(groups)):
            kept.append(key)
            groups = split
    return kept


# ------------------------------------------------------------------------------------ metrics


def available_metrics(runs: Iterable[Run]) -> list[str]:
    """The numeric metric names of the completed runs, sorted."""
    names = set()
    for run in runs:
        if run.completed:
            names.update(key for key, value in run.metrics.items()
                         if isinstance(value, (int, float)) and not isinstance(value, bool) or is_non_finite(value))
    return sorted(names)


def resolve_metrics(runs: Sequence[Run], metrics: Sequence[str] | None) -> list[str]:
    """Metric names from names and glob patterns (``*/test/acc``), in the given order, each
    pattern's matches sorted; ``None``: every ``*/test/*`` metric except times and parameter
    counts. A name or pattern no completed run has is an error listing what there is."""
    available = available_metrics(runs)
    if not available and metrics is not None:  # no run completed: nothing to check names against
        return list(dict.fromkeys(m for m in metrics if not _GLOB_CHARS & set(m)))
    if metrics is None:
        return [m for m in available if fnmatchcase(m, DEFAULT_METRIC_PATTERN)
                and not any(fnmatchcase(m, pattern) for pattern in DEFAULT_METRIC_EXCLUDE)]
    chosen: dict[str, None] = {}
    for pattern in metrics:
        if _GLOB_CHARS & set(pattern):
            matches = [m for m in available if fnmatchcase(m, pattern)]
        else:
            matches = [pattern] if pattern in available else []
        if not matches:
            close = difflib.get_close_matches(pattern, available, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise TableError(f"no completed run has a metric {pattern!r}{hint}; available metrics: "
                             + ", ".join(available))
        chosen.update(dict.fromkeys(matches))
    return list(chosen)


def is_lower_better(metric: str, lower: Sequence[str] = (), higher: Sequence[str] = ()) -> bool:
    """Whether smaller is better for ``metric``: matched by a pattern of ``lower`` (or
    ``higher``), else by its name (ending in loss, time_s, ppl or perplexity)."""
    in_lower = any(fnmatchcase(metric, pattern) for pattern in lower)
    in_higher = any(fnmatchcase(metric, pattern) for pattern in higher)
    if in_lower and in_higher:
        raise TableError(f"metric {metric!r} is both lower-is-better and higher-is-better")
    if in_lower or in_higher:
        return in_lower
    return metric.endswith(LOWER_IS_BETTER_SUFFIXES)


# -------------------------------------------------------------------------------------- table


def _context(run: Run, row_keys: Sequence[str], seed_key: str) -> str:
    parts = [f"{key}={format_value(run.get(key))}" for key in row_keys]
    seed = run.get(seed_key)
    if seed is not MISSING and seed_key not in row_keys:
        parts.append(f"{seed_key}={format_value(seed)}")
    return ", ".join(parts)


def _check_row_keys(runs: Sequence[Run], row_keys: Sequence[str]) -> None:
    for key in row_keys:
        if all(run.get(key) is MISSING for run in runs):
            example = runs[0]
            raise TableError(
                f"config key {key!r} is in no run's config ({len(runs)} runs; e.g. "
                f"{example.path / 'config.yaml'}: {describe_missing_key(example.config, key)})"
            )


def _failed_if_non_finite(run: Run, metrics: Sequence[str]) -> Run:
    """A completed run with a NaN / infinite value in one of ``metrics``, as a failed run (a copy;
    ``run`` is left as it is): its numbers come from weights that diverged, none of them counts."""
    if not run.completed:
        return run
    bad = [(metric, run.metrics[metric]) for metric in metrics
           if metric in run.metrics and is_non_finite(run.metrics[metric])]
    if not bad:
        return run
    detail = "non-finite metric " + ", ".join(f"{metric} ({value})" for metric, value in bad)
    return dataclasses.replace(run, status=FAILED, detail=detail)


def _mark_best(rows: Sequence[Row], metric: str, lower: bool) -> None:
    cells = [row.cells[metric] for row in rows if row.cells[metric].n > 0]
    if len(cells) < 2:
        return
    best_mean = (min if lower else max)(cell.mean for cell in cells)
    best = [cell for cell in cells if cell.mean == best_mean]
    if len(best) == len(cells):  # all tied: nothing to point out
        return
    best_std = max(cell.std or 0.0 for cell in best)
    for cell in cells:
        if cell.mean == best_mean:
            cell.best = True
        elif abs(best_mean - cell.mean) <= max(best_std, cell.std or 0.0):
            cell.within_noise = True


def _row_warnings(table: Table) -> list[str]:
    warnings = []
    for row in table.rows:
        where = ", ".join(f"{k}={v}" for k, v in zip(table.row_keys, row.labels())) or "all runs"
        completed = [run for run in row.runs if run.completed]
        seeds = Counter(value_key(run.get(table.seed_key)) for run in completed
                        if run.get(table.seed_key) is not MISSING)
        for seed, count in sorted(seeds.items()):
            if count > 1:
                same = [run for run in completed if value_key(run.get(table.seed_key)) == seed]
                warnings.append(
                    f"row {where}: {table.seed_key}={format_value(same[0].get(table.seed_key))} in {count} "
                    f"completed runs ({', '.join(run.label for run in same)}): a sweep given twice, a "
                    "rerun, or a config key missing from --rows?"
                )
        if len(row.runs) > 1:
            mixed = [key for key in differing_keys(row.runs, table.seed_key) if key not in table.row_keys]
            if mixed:
                shown = ", ".join(mixed[:5]) + (f", ... ({len(mixed)} keys)" if len(mixed) > 5 else "")
                warnings.append(f"row {where} averages runs whose configs differ in: {shown} "
                                "(add keys to --rows to split them)")
    return warnings


def build_table(
    runs: Sequence[Run],
    rows: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    *,
    seed_key: str = "seed",
    lower: Sequence[str] = (),
    higher: Sequence[str] = (),
    precision: int = 3,
) -> Table:
    """Aggregate ``runs`` into a :class:`Table`.

    ``rows``: dotted config keys (default :func:`default_row_keys`); ``metrics``: names or glob
    patterns (default: all ``*/test/*`` metrics but times and parameter counts); ``lower`` /
    ``higher``: patterns of metrics where lower / higher is better, overriding the name rule.
    """
    if not runs:
        raise TableError("no runs")
    if precision < 0:
        raise TableError(f"precision must be >= 0, not {precision}")
    row_keys = list(default_row_keys(runs, seed_key) if rows is None else rows)
    _check_row_keys(runs, row_keys)
    metric_names = resolve_metrics(runs, metrics)
    directions = {metric: is_lower_better(metric, lower, higher) for metric in metric_names}

    groups: dict[tuple, Row] = {}
    for run in runs:
        run = _failed_if_non_finite(run, metric_names)
        values = tuple(run.get(key) for key in row_keys)
        group = tuple(value_key(value) for value in values)
        groups.setdefault(group, Row(values=values, runs=[])).runs.append(run)
    table = Table(row_keys=row_keys, metrics=metric_names, lower_is_better=directions,
                  rows=[groups[group] for group in sorted(groups)], seed_key=seed_key, precision=precision)

    failed: list[Issue] = []
    incomplete: list[Issue] = []
    missing: list[Issue] = []
    # a metric that no completed run of a row reports (a sweep mixing tasks: SST-2 rows have no
    # entity F1) is one note per metric naming those rows, not one per run
    absent: dict[str, list[str]] = {}
    for row in table.rows:
        for run in row.runs:
            context = _context(run, row_keys, seed_key)
            if run.status == FAILED:
                failed.append(Issue(FAILED, run, context, run.detail))
            elif run.status == INCOMPLETE:
                incomplete.append(Issue(INCOMPLETE, run, context, run.detail))
        completed = [run for run in row.runs if run.completed]
        for metric in metric_names:
            values = []
            if completed and all(metric not in run.metrics for run in completed):
                absent.setdefault(metric, []).append(" / ".join(row.labels()) or "all runs")
                completed_here = []
            else:
                completed_here = completed
            for run in completed_here:
                value = run.metrics.get(metric, MISSING)
                if value is MISSING:
                    missing.append(Issue("missing", run, _context(run, row_keys, seed_key), metric=metric))
                elif not _is_number(value):
                    missing.append(Issue("not_finite", run, _context(run, row_keys, seed_key),
                                         detail=repr(value), metric=metric))
                else:
                    values.append(float(value))
            row.cells[metric] = Cell(
                mean=statistics.fmean(values) if values else None,
                std=statistics.stdev(values) if len(values) > 1 else None,
                n=len(values),
                values=values,
            )
    absent_issues = [Issue("absent", None, "", detail=f"{len(rows)} row{'s' if len(rows) > 1 else ''} "
                           f"({' / '.join(row_keys)}): " + "; ".join(rows),
                           metric=metric) for metric, rows in absent.items()]
    table.issues = failed + incomplete + missing + absent_issues
    for metric in metric_names:
        _mark_best(table.rows, metric, directions[metric])
    table.warnings = _row_warnings(table)
    return table
