"""``shiftlab-table``: sweep directories -> a Markdown / LaTeX / CSV table (and a PNG plot)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from shiftlab.utils.io import write_text_atomic

from .aggregate import available_metrics, build_table, default_row_keys, differing_keys
from .collect import COMPLETED, FAILED, INCOMPLETE, Run, TableError, collect_runs
from .table import Table
from .values import format_value

PROG = "shiftlab-table"
EXTENSIONS = {"md": ".md", "latex": ".tex", "csv": ".csv"}

EPILOG = """\
rows and metrics:
  Runs with the same values of the --rows keys (normally: the seeds of one configuration) make
  one row: mean ± sample std (ddof=1) of each metric over its completed runs, and n. A --rows key
  that some runs' configs lack shows as "—"; one that no run has is an error. The best mean of
  each column is bold; † marks means within noise of it (|best - mean| <= the larger std).
  Failed and incomplete runs are counted (failed / incomplete columns) and listed under the table.
  Options taking several values (--rows, --metrics, ...) end at the next option: give the
  SWEEP_DIRs first, or end the options with --.

examples:
  shiftlab-table multirun/2026-11-28/22-32-56-666920
  shiftlab-table SWEEP --rows shift.name objective.name --metrics order/test/acc '*/test/loss'
  shiftlab-table SWEEP1 SWEEP2 --format all --out paper/tables/shift_policies
  shiftlab-table SWEEP --plot rate.png --x shift.params.rate --line shift.name --metric order/test/acc
  shiftlab-table SWEEP --list
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Aggregate the runs of shiftlab sweeps (or single runs) over seeds into a paper\n"
        "table: Markdown (default, to stdout), LaTeX booktabs or CSV; optionally a PNG plot.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("paths", nargs="+", metavar="SWEEP_DIR",
                        help="sweep directories (shiftlab-train -m), run directories, W&B offline run "
                        "directories, or directories holding any of them (searched recursively)")
    parser.add_argument("--rows", nargs="+", metavar="KEY",
                        help="dotted config keys whose values make the rows, e.g. shift.name "
                        "objective.name (default: the keys that tell the runs' configs apart, seed aside)")
    parser.add_argument("--metrics", nargs="+", metavar="METRIC",
                        help="metrics.json keys or glob patterns, e.g. order/test/acc '*/test/loss' "
                        "(default: every */test/* metric)")
    parser.add_argument("--seed-key", default="seed", metavar="KEY",
                        help="config key of the seed, averaged over (default: seed)")
    parser.add_argument("--lower", nargs="+", action="extend", default=[], metavar="METRIC",
                        help="metrics (or patterns) where lower is better (default: names ending in loss, "
                        "time_s, ppl or perplexity)")
    parser.add_argument("--higher", nargs="+", action="extend", default=[], metavar="METRIC",
                        help="metrics (or patterns) where higher is better, overriding the name rule")
    parser.add_argument("--format", choices=["md", "latex", "csv", "all"], default="md",
                        help="output format (default: md)")
    parser.add_argument("--out", metavar="PREFIX",
                        help="write PREFIX.md / PREFIX.tex / PREFIX.csv (atomically) instead of printing")
    parser.add_argument("--precision", type=int, default=3, metavar="N",
                        help="decimals in Markdown and LaTeX (default: 3; CSV is unrounded)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a run failed or is incomplete, or a metric is missing")
    parser.add_argument("--list", action="store_true",
                        help="list the runs found, the config keys that differ and the metrics, then exit")
    parser.add_argument("--include", nargs="+", default=[], metavar="FILE",
                        help="files of each row's first completed run (lowest seed) to show under the Markdown "
                        "table, as paths or globs relative to the run directory, e.g. 'ner/reports/*.txt'")
    plot = parser.add_argument_group("plot (needs matplotlib: pip install -e '.[tables]')")
    plot.add_argument("--plot", metavar="PNG", help="also plot a metric against --x into this PNG file")
    plot.add_argument("--x", metavar="KEY", help="numeric config key on the x axis, e.g. shift.params.rate")
    plot.add_argument("--line", nargs="+", default=[], metavar="KEY",
                      help="config keys that make the lines, e.g. shift.name (default: the table's row keys "
                      "other than --x, so each line's points are rows of the table)")
    plot.add_argument("--metric", "--plot-metric", dest="plot_metric", metavar="METRIC",
                      help="the metric to plot (default: the table's first metric)")
    plot.add_argument("--x-missing", type=float, metavar="VALUE",
                      help="x of the rows whose config lacks --x (default: left out of the plot)")
    return parser


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _listing(runs: Sequence[Run], seed_key: str) -> str:
    statuses = Counter(run.status for run in runs)
    lines = [f"{len(runs)} runs: " + ", ".join(f"{statuses[s]} {s}" for s in (COMPLETED, FAILED, INCOMPLETE))]
    for run in runs:
        lines.append(f"  {run.status:<10} {run.label}" + (f"  ({run.detail})" if run.detail else ""))
    differing = differing_keys(runs, seed_key)
    seeds = sorted({format_value(run.get(seed_key)) for run in runs})
    lines.append(f"config keys that differ (default --rows: {' '.join(default_row_keys(runs, seed_key)) or 'none'}):")
    for key, values in differing.items():
        lines.append(f"  {key}: {', '.join(format_value(v) for v in values)}")
    lines.append(f"  {seed_key} (the seed key): {', '.join(seeds)}")
    metrics = available_metrics(runs)
    lines.append(f"metrics ({len(metrics)}):")
    lines += [f"  {metric}" for metric in metrics]
    return "\n".join(lines) + "\n"


def included_files(table: Table, patterns: Sequence[str], seed_key: str = "seed") -> str:
    """Markdown sections with the files ``patterns`` of each row's first completed run (lowest
    seed): the per-run reports a table summarises (e.g. a classification report)."""
    sections = []
    for row in table.rows:
        completed = sorted((run for run in row.runs if run.completed), key=lambda run: format_value(run.get(seed_key)))
        if not completed:
            continue
        run = completed[0]
        for pattern in patterns:
            for path in sorted(Path(run.path).glob(pattern)):
                if path.is_file():
                    title = f"{', '.join(row.labels())}: {path.relative_to(run.path)} ({seed_key} {format_value(run.get(seed_key))})"
                    sections.append(f"#### {title}\n\n```\n{path.read_text(encoding='utf-8').rstrip()}\n```\n")
    return "\n" + "\n".join(sections) if sections else ""


def _render(table: Table, fmt: str, precision: int, include: Sequence[str] = (), seed_key: str = "seed") -> str:
    if fmt == "md":
        return table.to_markdown(precision) + included_files(table, include, seed_key)
    if fmt == "latex":
        return table.to_latex(precision)
    return table.to_csv()


def _out_path(prefix: str, fmt: str, single: bool) -> Path:
    extension = EXTENSIONS[fmt]
    if single and prefix.endswith(extension):  # --out table.md --format md: not table.md.md
        return Path(prefix)
    return Path(prefix + extension)


def run(args: argparse.Namespace) -> int:
    runs = collect_runs(args.paths)
    if args.list:
        sys.stdout.write(_listing(runs, args.seed_key))
        return 0
    table = build_table(runs, rows=args.rows, metrics=args.metrics, seed_key=args.seed_key,
                        lower=args.lower, higher=args.higher, precision=args.precision)
    for issue in table.issues:
        what = {FAILED: "failed run", INCOMPLETE: "incomplete run"}.get(issue.kind, "missing metric")
        _warn(f"{what}: {issue.describe()}")
    for warning in table.warnings:
        _warn(warning)
    if not table.metrics:
        _warn("no metrics to show (no completed run has a */test/* metric; choose some with --metrics)")

    formats = list(EXTENSIONS) if args.format == "all" else [args.format]
    if args.out:
        for fmt in formats:
            text = _render(table, fmt, args.precision, args.include, args.seed_key)
            path = write_text_atomic(_out_path(args.out, fmt, len(formats) == 1), text)
            print(f"{PROG}: wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write("\n".join(_render(table, fmt, args.precision, args.include, args.seed_key) for fmt in formats))

    if args.plot:
        from .plot import plot_metric

        metric = args.plot_metric or (table.metrics[0] if table.metrics else None)
        if metric is None:
            raise TableError("--plot: no metric to plot (give --metric)")
        # Without --line, one line per value of the table's other row keys: a point never pools
        # rows the table keeps apart (a no-pretraining reference with a sweep's default n, say).
        line = args.line or [key for key in table.row_keys if key != args.x]
        plot = plot_metric(runs, args.plot, x=args.x, metric=metric, line=line,
                           seed_key=args.seed_key, x_missing=args.x_missing)
        for skipped in plot.skipped:
            _warn(f"not in the plot: {skipped}")
        print(f"{PROG}: wrote {plot.path}", file=sys.stderr)

    if args.strict and table.issues:
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plot and not args.x:
        parser.error("--plot needs --x KEY (the numeric config key on the x axis)")
    if not args.plot and (args.x or args.line or args.plot_metric or args.x_missing is not None):
        parser.error("--x, --line, --metric and --x-missing go with --plot PNG")
    if args.precision < 0:
        parser.error("--precision must be >= 0")
    try:
        return run(args)
    except TableError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
