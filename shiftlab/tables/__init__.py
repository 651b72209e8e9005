"""Paper tables from sweep directories: ``shiftlab-table`` and its Python API.

    from shiftlab.tables import collect_runs, build_table
    runs = collect_runs(["multirun/2026-11-28/22-32-56-666920"])
    table = build_table(runs, rows=["shift.name"], metrics=["order/test/acc", "*/test/loss"])
    print(table.to_markdown())        # also .to_latex(), .to_csv(), .records()

:mod:`.collect` reads run directories, :mod:`.aggregate` groups and averages them into a
:mod:`.table` (which writes itself as Markdown / LaTeX / CSV), :mod:`.plot` draws a PNG, :mod:`.cli` is the script.
"""

from .aggregate import available_metrics, build_table, default_row_keys, differing_keys
from .collect import COMPLETED, FAILED, INCOMPLETE, MISSING, Run, TableError, collect_runs, read_run, read_wandb_run
from .plot import Plot, plot_metric
from .table import Cell, Issue, Row, Table

__all__ = [
    "COMPLETED",
    "FAILED",
    "INCOMPLETE",
    "MISSING",
    "Cell",
    "Issue",
    "Plot",
    "Row",
    "Run",
    "Table",
    "TableError",
    "available_metrics",
    "build_table",
    "collect_runs",
    "default_row_keys",
    "differing_keys",
    "plot_metric",
    "read_run",
    "read_wandb_run",
]
