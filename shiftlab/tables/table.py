"""A table of aggregated metrics (:class:`Table`: rows of :class:`Cell` s, and the
:class:`Issue` s the numbers leave out), and its text forms: Markdown, LaTeX (booktabs), CSV.
:func:`~shiftlab.tables.aggregate.build_table` makes one from runs.

Markdown and LaTeX show ``mean ± std`` rounded to ``precision`` decimals (the std left out when
n = 1, the cell's own n added in parentheses when a metric is missing from some runs), the best
mean of each column in bold, the means within noise of it with a dagger (†), and a legend and
the list of failed / incomplete runs and missing metrics under the table (LaTeX: as ``%``
comments after the ``tabular``). CSV has every number unrounded (``repr``), and no marks.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from .collect import COMPLETED, FAILED, INCOMPLETE, MISSING, Run
from .values import format_value

__all__ = ["Cell", "Issue", "Row", "Table", "latex_escape", "to_csv", "to_latex", "to_markdown"]

@dataclass
class Cell:
    """One metric of one row: aggregate of the completed runs that have it."""

    mean: float | None
    std: float | None  #: sample std (ddof=1); None when n < 2
    n: int
    values: list[float] = field(default_factory=list)
    best: bool = False
    within_noise: bool = False  #: not the best, but within noise of it


@dataclass
class Row:
    values: tuple  #: the row keys' values (MISSING where a run's config lacks the key)
    runs: list[Run]
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return sum(run.status == COMPLETED for run in self.runs)

    @property
    def failed(self) -> int:
        return sum(run.status == FAILED for run in self.runs)

    @property
    def incomplete(self) -> int:
        return sum(run.status == INCOMPLETE for run in self.runs)

    def labels(self) -> list[str]:
        return [format_value(value) for value in self.values]


@dataclass
class Issue:
    """Something the table's numbers leave out: a failed or incomplete run, a missing metric."""

    kind: str  #: ``failed`` | ``incomplete`` | ``missing`` | ``not_finite`` | ``absent``
    run: Run | None  #: None for ``absent`` (a metric no run of some rows reports)
    context: str  #: the run's row and seed, ``shift.name=identity, seed=1``
    detail: str = ""
    metric: str | None = None

    def describe(self, quote=lambda text: text) -> str:
        if self.run is None:
            where = ""
        else:
            where = f"{quote(self.run.label)} ({self.context})" if self.context else quote(self.run.label)
        if self.kind == "missing":
            return f"metric {self.metric} missing in run {where}"
        if self.kind == "absent":
            return f"metric {self.metric} is reported by no run of {self.detail}"
        if self.kind == "not_finite":
            return f"metric {self.metric} is {self.detail} in run {where}"
        return f"{where}: {self.detail}"


@dataclass
class Table:
    """Rows of aggregated metrics; render with :meth:`to_markdown`, :meth:`to_latex`,
    :meth:`to_csv`, or take :meth:`records` (a list of dicts, for a DataFrame)."""

    row_keys: list[str]
    metrics: list[str]
    lower_is_better: dict[str, bool]
    rows: list[Row]
    issues: list[Issue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seed_key: str = "seed"
    precision: int = 3
    over: str = "seeds"  #: what the std is over, for the legend (a probe's table: "draws")

    @property
    def runs(self) -> list[Run]:
        return [run for row in self.rows for run in row.runs]

    def issues_of(self, kind: str) -> list[Issue]:
        return [issue for issue in self.issues if issue.kind == kind]

    def to_markdown(self, precision: int | None = None) -> str:
        return to_markdown(self, precision)

    def to_latex(self, precision: int | None = None) -> str:
        return to_latex(self, precision)

    def to_csv(self) -> str:
        return to_csv(self)

    def records(self) -> list[dict[str, Any]]:
        """One dict per row: the row keys' values (None where missing), n, failed, incomplete,
        and ``<metric>:mean``, ``<metric>:std``, ``<metric>:n`` (the CSV's columns)."""
        records = []
        for row in self.rows:
            record: dict[str, Any] = {key: (None if value is MISSING else value)
                                      for key, value in zip(self.row_keys, row.values)}
            record.update(n=row.n, failed=row.failed, incomplete=row.incomplete)
            for metric in self.metrics:
                cell = row.cells[metric]
                record.update({f"{metric}:mean": cell.mean, f"{metric}:std": cell.std, f"{metric}:n": cell.n})
            records.append(record)
        return records


# ------------------------------------------------------------------------------------- render

_NO_KEYS_HEADER, _NO_KEYS_LABEL = "runs", "all"

_SECTIONS = (
    ("failed", "Failed runs (not in the means):"),
    ("incomplete", "Incomplete runs (killed, or still running; not in the means):"),
    ("missing", "Missing metrics:"),
    ("not_finite", "Metrics that are not finite numbers (left out of the means):"),
    ("absent", "Metrics that whole rows do not report (— in the table):"),
)


def _cell_text(cell: Cell, row_n: int, precision: int) -> str:
    if cell.mean is None:
        return "—"
    text = f"{cell.mean:.{precision}f}"
    if cell.std is not None:
        text += f" ± {cell.std:.{precision}f}"
    if cell.n != row_n:
        text += f" (n={cell.n})"
    return text


def _count_columns(table: Table) -> list[str]:
    columns = ["n"]
    if any(row.failed for row in table.rows):
        columns.append("failed")
    if any(row.incomplete for row in table.rows):
        columns.append("incomplete")
    return columns


def _header(table: Table) -> tuple[list[str], list[str], list[str]]:
    """(key column names, count column names, metric column names with ↑/↓)."""
    keys = list(table.row_keys) or [_NO_KEYS_HEADER]
    metrics = [f"{metric} {'↓' if table.lower_is_better[metric] else '↑'}" for metric in table.metrics]
    return keys, _count_columns(table), metrics


def _row_counts(row: Row, columns: list[str]) -> list[str]:
    return [str(getattr(row, column)) for column in columns]


def _legend_parts(table: Table) -> tuple[bool, bool]:
    cells = [row.cells[metric] for row in table.rows for metric in table.metrics]
    return any(cell.best for cell in cells), any(cell.within_noise for cell in cells)


def _issue_sections(table: Table, quote) -> list[list[str]]:
    sections = []
    for kind, title in _SECTIONS:
        issues = table.issues_of(kind)
        if issues:
            sections.append([title, *(f"- {issue.describe(quote)}" for issue in issues)])
    return sections


# ----------------------------------------------------------------------------------- Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def to_markdown(table: Table, precision: int | None = None) -> str:
    """A GitHub pipe table (columns padded to line up), then the legend and the issues."""
    precision = table.precision if precision is None else precision
    keys, counts, metrics = _header(table)
    header = [*keys, *counts, *metrics]
    lines = []
    for row in table.rows:
        cells = []
        for metric in table.metrics:
            cell = row.cells[metric]
            text = _cell_text(cell, row.n, precision)
            if cell.best:
                text = f"**{text}**"
            elif cell.within_noise:
                text += "†"
            cells.append(text)
        lines.append([*(row.labels() if table.row_keys else [_NO_KEYS_LABEL]), *_row_counts(row, counts), *cells])
    grid = [[_md_escape(text) for text in line] for line in [header, *lines]]
    widths = [max(3, *(len(line[i]) for line in grid)) for i in range(len(header))]
    left = len(keys)

    def render(line: list[str]) -> str:
        padded = [text.ljust(w) if i < left else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = [(":" + "-" * (w - 1)) if i < left else ("-" * (w - 1) + ":") for i, w in enumerate(widths)]
    out = [render(grid[0]), "| " + " | ".join(rule) + " |", *(render(line) for line in grid[1:])]

    best, noise = _legend_parts(table)
    legend = (f"Mean ± sample std over {table.over} (no std when n = 1); n: completed runs (a cell's own n in "
              "parentheses when a metric is missing); ↑/↓: higher/lower is better.")
    if best:
        legend += " **Bold**: best in the column."
    if noise:
        legend += " †: within noise of the best (|best mean − mean| ≤ the larger of the two stds)."
    out += ["", legend]
    for section in _issue_sections(table, lambda label: f"`{label}`"):
        out += ["", *section]
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------------------------- LaTeX

_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "—": "--", "†": r"$^{\dagger}$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
    "−": "$-$", "…": r"\dots{}",
}


def latex_escape(text: str) -> str:
    """Text for LaTeX: its special characters escaped, ``±`` as ``$\\pm$``."""
    return "".join(_LATEX.get(char, char) for char in text)


def to_latex(table: Table, precision: int | None = None) -> str:
    """A booktabs ``tabular`` (``\\toprule``, ``\\midrule``, ``\\bottomrule``), ready for
    ``\\input``; after it, as ``%`` comments, the legend (for the caption: a row spanning the table
    would widen narrow tables) and the failed / incomplete runs and missing metrics."""
    precision = table.precision if precision is None else precision
    keys, counts, metrics = _header(table)
    out = [
        r"% shiftlab-table; needs \usepackage{booktabs}",
        r"\begin{tabular}{" + "l" * len(keys) + "r" * (len(counts) + len(metrics)) + "}",
        r"\toprule",
        " & ".join(latex_escape(text) for text in [*keys, *counts, *metrics]) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = []
        for metric in table.metrics:
            cell = row.cells[metric]
            text = latex_escape(_cell_text(cell, row.n, precision))
            if cell.best:
                text = rf"\textbf{{{text}}}"
            elif cell.within_noise:
                text += r"$^{\dagger}$"
            cells.append(text)
        labels = [latex_escape(label) for label in (row.labels() if table.row_keys else [_NO_KEYS_LABEL])]
        out.append(" & ".join([*labels, *_row_counts(row, counts), *cells]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    best, noise = _legend_parts(table)
    legend = rf"Mean $\pm$ sample std over {table.over}; $n$: completed runs; $\uparrow$/$\downarrow$: higher/lower is better."
    if best:
        legend += r" \textbf{Bold}: best."
    if noise:
        legend += r" $^{\dagger}$: within noise of the best (gap $\leq$ the larger std)."
    out.append(f"% Legend (for the caption): {legend}")
    for section in _issue_sections(table, lambda label: label):
        out += [f"% {line}" for line in section]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- CSV


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def to_csv(table: Table) -> str:
    """One line per row: the row keys' values (empty where missing), n, failed, incomplete, then
    ``<metric>:mean``, ``<metric>:std``, ``<metric>:n`` per metric, numbers unrounded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = list(table.row_keys) or [_NO_KEYS_HEADER]
    writer.writerow([*keys, "n", "failed", "incomplete",
                     *(f"{metric}:{part}" for metric in table.metrics for part in ("mean", "std", "n"))])
    for row in table.rows:
        labels = ["" if value is MISSING else format_value(value) for value in row.values] or [_NO_KEYS_LABEL]
        numbers = []
        for metric in table.metrics:
            cell = row.cells[metric]
            numbers += [_number(cell.mean), _number(cell.std), str(cell.n)]
        writer.writerow([*labels, row.n, row.failed, row.incomplete, *numbers])
    return buffer.getvalue()
