"""One metric against a numeric config key, one line per group: a PNG for a paper or a notebook.

matplotlib is imported only here, and only when a plot is made (``pip install -e '.[tables]'``);
the figure is drawn with the Agg canvas directly, so no pyplot state or backend is touched.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shiftlab.utils.io import write_bytes_atomic

from .aggregate import build_table
from .collect import MISSING, Run, TableError
from .table import Table
from .values import format_value

__all__ = ["Plot", "plot_metric"]


@dataclass
class Plot:
    path: Path
    table: Table  #: the aggregated points (rows: the line keys, then x)
    skipped: list[str] = field(default_factory=list)  #: rows left out, and why


def plot_metric(
    runs: Sequence[Run],
    path: str | Path,
    *,
    x: str,
    metric: str,
    line: Sequence[str] = (),
    seed_key: str = "seed",
    x_missing: float | None = None,
    title: str | None = None,
) -> Plot:
    """Plot the mean of ``metric`` (error bars: std over seeds) against the config key ``x``,
    one line per value of the ``line`` keys; save it as a PNG at ``path`` (atomically).

    Rows without ``x`` in their config (the ``identity`` policy has no ``shift.params.rate``) are
    skipped, or put at ``x_missing`` when given; rows without a value of the metric are skipped.
    """
    table = build_table(runs, rows=[*line, x], metrics=[metric], seed_key=seed_key)
    metric = table.metrics[0] if table.metrics else metric
    series: dict[tuple, list[tuple[float, float, float]]] = {}
    labels: dict[tuple, str] = {}
    skipped = []
    for row in table.rows:
        *line_values, x_value = row.values
        where = ", ".join(f"{k}={v}" for k, v in zip(table.row_keys, row.labels()))
        if x_value is MISSING:
            if x_missing is None:
                skipped.append(f"{where}: no {x} in the config (give --x-missing to place it)")
                continue
            x_value = x_missing
        if isinstance(x_value, bool) or not isinstance(x_value, (int, float)):
            raise TableError(f"--x {x}: the value {format_value(x_value)!r} ({where}) is not a number")
        cell = row.cells.get(metric)
        if cell is None or cell.mean is None:
            skipped.append(f"{where}: no completed run with {metric}")
            continue
        key = tuple(line_values)
        labels[key] = ", ".join(format_value(value) for value in line_values)
        series.setdefault(key, []).append((float(x_value), cell.mean, cell.std or 0.0))
    if not series:
        raise TableError(f"nothing to plot: no row has both {x} and {metric}" + "".join(f"\n  {s}" for s in skipped))

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise TableError("--plot needs matplotlib: pip install -e '.[tables]'") from exc
    figure = Figure(figsize=(5.5, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for key, points in series.items():  # in the table's row order: deterministic
        points.sort()
        axes.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                      marker="o", capsize=3, label=labels[key] or None)
    axes.set_xlabel(x)
    arrow = "lower is better" if table.lower_is_better.get(metric) else "higher is better"
    axes.set_ylabel(f"{metric}\n(mean ± std, {arrow})")
    if line:
        axes.legend(title=" / ".join(line), fontsize="small")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, metadata={"Software": None})
    path = Path(path)
    write_bytes_atomic(path, buffer.getvalue())
    return Plot(path=path, table=table, skipped=skipped)
