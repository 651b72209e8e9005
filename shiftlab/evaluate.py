"""``shiftlab-eval RUN_DIR``: evaluate a finished run again from what it exported.

A run leaves its resolved ``config.yaml``, the shift-pretrained backbone (``pretrain/backbone``)
and, per task, what fine-tuning trained (``<task>/adapter``: PEFT adapters, the prefix, or the
whole model for ``finetune=full``, plus the task head). This rebuilds each task's model from
those files alone, with the same setup code as ``shiftlab-train`` (:class:`RunContext`, the
task families), and evaluates it, writing the reports under ``<task>/eval_<split>/``.

    shiftlab-eval outputs/runs/2026-11-28/12-00-00-000000
    shiftlab-eval RUN_DIR --task order --split val
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

import shiftlab  # noqa: F401  (registers the config resolvers)
from shiftlab.config_schema import checked
from shiftlab.run_context import RunContext
from shiftlab.stages.common import prefixed, seed_stage
from shiftlab.stages.finetuning import reevaluate
from shiftlab.utils.io import write_json_atomic
from shiftlab.utils.logs import ensure_console
from shiftlab.utils.run_layout import RunLayout
from shiftlab.utils.upstream_warnings import silence_known_upstream_warnings


def evaluate_run(run_dir: str | Path, *, tasks: list[str] | None = None, split: str = "test") -> dict[str, float]:
    layout = RunLayout(run_dir)
    if not layout.config.exists():
        raise FileNotFoundError(f"{layout.root} is not a shiftlab run directory: it has no config.yaml")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    cfg = checked(OmegaConf.load(layout.config))  # a run written before a key existed gets its default
    seed_stage(cfg)
    ctx = RunContext.build(cfg, layout.root, trusted=False)  # a run directory may come from anyone
    chosen = tasks or list(ctx.tasks)
    missing = [task for task in chosen if not layout.adapter(task).exists()]
    if missing:
        raise FileNotFoundError(f"{layout.root} has no export for task(s) {', '.join(missing)} (looked for <task>/adapter)")

    metrics: dict[str, float] = {}
    for task in chosen:
        base = ctx.finetuning_base(task)
        metrics.update(prefixed(task, reevaluate(cfg, task, ctx.tasks.get(task, {}), ctx.corpus, ctx.tokenizer,
                                                 ctx.framing, base, layout, split)))
    write_json_atomic(layout.eval_metrics(split), metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shiftlab-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory written by shiftlab-train")
    parser.add_argument("--task", action="append", help="a task to evaluate (repeatable; default: all of the run's)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    args = parser.parse_args(argv)
    silence_known_upstream_warnings()
    ensure_console()  # the reports are logged (shiftlab.utils.logs)
    try:
        metrics = evaluate_run(args.run_dir, tasks=args.task, split=args.split)
    except (FileNotFoundError, ValueError) as error:
        print(f"shiftlab-eval: {error}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"shiftlab-eval: metrics written to {RunLayout(args.run_dir).eval_metrics(args.split)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
