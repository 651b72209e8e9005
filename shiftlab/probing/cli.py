"""``shiftlab-probe``: how much does a fine-tuned model rely on word order?

Scores a model's test split again under shift policies applied at test time (``identity`` first,
then each condition ``--draws`` times with keyed draws) and reports, per condition, the metric,
its drop from identity (mean ± std over draws), the fraction of examples whose prediction the
permutation left unchanged (permutation acceptance) and, for classification, the fraction right
only under some permutation. See ``shiftlab/probing/grid.py`` for the conditions.

    shiftlab-probe outputs/runs/2026-12-06/12-00-00-000000
    shiftlab-probe RUN_DIR --task order --grid small --draws 3
    shiftlab-probe RUN_DIR/sst2/model
    shiftlab-probe path/to/bert-sst2 data=sst2 --task sst2 --condition ngram_shuffle:n=1@word
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shiftlab.utils.logs import ensure_console, log
from shiftlab.utils.upstream_warnings import silence_known_upstream_warnings

from .grid import GRIDS, conditions_for


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftlab-probe", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("path", help="a shiftlab run directory, a run's <task>/model export, or a transformers "
                        "model directory with a sequence- or token-classification head")
    parser.add_argument("overrides", nargs="*", help="for a model directory outside a run: config overrides that "
                        "say what data to probe it on (data=sst2)")
    parser.add_argument("--task", action="append", help="a task to probe (repeatable; default: every "
                        "classification and tagging task of the run)")
    parser.add_argument("--grid", default="full", choices=sorted(GRIDS), help="preset conditions (default: full)")
    parser.add_argument("--condition", action="append", default=[], metavar="SPEC",
                        help="a condition, policy[:key=value,...][@unit], e.g. local_shuffle:window=3,rate=1.0@word "
                        "(repeatable; with --only, instead of the grid)")
    parser.add_argument("--only", action="store_true", help="probe the --condition s only (and identity)")
    parser.add_argument("--draws", type=int, default=5, help="keyed draws per condition (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="the draws' seed (default: 0)")
    parser.add_argument("--limit", type=int, help="probe the first N test examples only (identity then differs "
                        "from the run's test metric)")
    parser.add_argument("--out", type=Path, help="output directory (default: <run>/<task>/probe, or <model>/probe)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-plot", action="store_true", help="skip probe.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    silence_known_upstream_warnings()
    ensure_console()
    from .report import record_in_run, write_probe
    from .runner import run_probe
    from .targets import targets_for

    try:
        conditions = conditions_for(None if args.only else args.grid, args.condition)
        targets = targets_for(args.path, tasks=args.task, overrides=args.overrides, device=args.device)
        for target in targets:
            result = run_probe(target, conditions, draws=args.draws, seed=args.seed, limit=args.limit,
                               progress=not args.no_progress)
            out = args.out / target.task if args.out and len(targets) > 1 else args.out or target.out_dir
            paths = write_probe(result, out, plot=not args.no_plot)
            if target.source.get("kind") == "run" and args.limit is None:
                paths.append(record_in_run(result, target.source["path"]))
            _report(result)
            log.info("shiftlab-probe: %s: wrote %s", target.task, ", ".join(str(p) for p in paths))
    except (FileNotFoundError, ValueError) as error:
        print(f"shiftlab-probe: {error}", file=sys.stderr)
        return 1
    return 0


def _report(result) -> None:
    from .report import probe_table

    lines = probe_table(result).to_markdown().split("\n")
    print(f"\n{result.target.task}: {result.examples} test examples, {result.draws} draws, seed {result.seed}")
    if result.target.reference:
        main = "entity_f1" if result.target.family == "tagging" else "acc"
        ref = result.target.reference.get(main)
        if ref is not None:
            print(f"the run's own test/{main}: {ref:.4f}; identity here: {result.identity[main]:.4f}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
