"""``shiftlab-eval RUN_DIR``: evaluate a finished run again from what it exported.

A run leaves its resolved ``config.yaml``, the shift-pretrained backbone (``pretrain/backbone``)
and, per task, what fine-tuning trained (``<task>/adapter``: PEFT adapters, the prefix, or the
whole model for ``finetune=full``, plus the task head). This rebuilds each task's model from
those files alone and tests it, writing the reports under ``<task>/eval_<split>/``.

    shiftlab-eval outputs/runs/2026-11-28/12-00-00-000000
    shiftlab-eval RUN_DIR --task order --split val
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import OmegaConf

import shiftlab  # noqa: F401  (registers the config resolvers)
from shiftlab.data import Framing, TaskDataModule
from shiftlab.models import BackboneSpec, build_backbone
from shiftlab.models.finetune_modes import load_finetuned
from shiftlab.pipeline import build_tokenizer, resolve_tasks
from shiftlab.tasks import TASK_MODULES
from shiftlab.data.generation import GenerationDataModule
from shiftlab.tasks.evaluation import save_reports
from shiftlab.tasks.generation import Seq2SeqModule
from shiftlab.utils.io import write_json_atomic


def evaluate_run(run_dir: str | Path, *, tasks: list[str] | None = None, split: str = "test") -> dict[str, float]:
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise FileNotFoundError(f"{run_dir} is not a shiftlab run directory: it has no config.yaml")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    cfg = OmegaConf.load(config_file)
    corpus = instantiate(cfg.data.corpus)
    spec = BackboneSpec(**OmegaConf.to_container(cfg.backbone, resolve=True))
    tokenizer = build_tokenizer(cfg.data.tokenizer, corpus, spec)
    framing = Framing.for_backbone(spec.kind, tokenizer)
    pretrained = run_dir / "pretrain" / "backbone"
    base = BackboneSpec(name=spec.name, kind=spec.kind, name_or_path=str(pretrained)) if pretrained.exists() else spec
    configured = resolve_tasks(cfg.task.tasks, corpus)
    chosen = tasks or list(configured)
    missing = [t for t in chosen if not (run_dir / t / "adapter").exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} has no export for task(s) {', '.join(missing)} (looked for <task>/adapter)")

    metrics: dict[str, float] = {}
    for task in chosen:
        if corpus.tasks()[task] == "generation":
            metrics.update(_evaluate_generation(cfg, run_dir, task, dict(configured.get(task, {})), corpus, tokenizer,
                                                framing, base, split))
            continue
        data = TaskDataModule(corpus, task, tokenizer, framing, seed=int(cfg.seed), batch_size=cfg.finetune.batch_size,
                              num_workers=0, max_length=cfg.data.max_length)
        data.setup()
        # A module of the same shape gives the head to load; its backbone is then replaced by
        # the exported one.
        module = TASK_MODULES[data.family](build_backbone(base, tokenizer, with_lm_head=False), data.label_names,
                                           **dict(configured.get(task, {})))
        module.backbone = load_finetuned(base, run_dir / task / "adapter", tokenizer, head=module.head)
        trainer = L.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, logger=False,
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
        loader = data.val_dataloader() if split == "val" else data.test_dataloader()
        results = (trainer.validate if split == "val" else trainer.test)(module, dataloaders=loader, verbose=False)
        for result in results:
            metrics.update({f"{task}/{key}": float(value) for key, value in result.items()})
        outputs = module.test_outputs if split == "test" else None
        reports = save_reports(module, data, split, run_dir / task / f"eval_{split}", outputs)
        metrics.update({f"{task}/{key}": value for key, value in reports.items()})
    write_json_atomic(run_dir / f"eval_{split}_metrics.json", metrics)
    return metrics


def _evaluate_generation(cfg, run_dir: Path, task: str, task_cfg: dict, corpus, tokenizer, framing, base,
                         split: str) -> dict[str, float]:
    """A generation task: the exported model generates again and is scored again (the report and
    the scores under ``<task>/eval_<split>/``)."""
    data = GenerationDataModule(corpus, task, tokenizer, framing, seed=int(cfg.seed), batch_size=cfg.finetune.batch_size,
                                num_workers=0, max_length=cfg.data.max_length,
                                max_target_length=task_cfg.pop("max_target_length", None))
    data.setup()
    backbone = load_finetuned(base, run_dir / task / "adapter", tokenizer)
    module = Seq2SeqModule(backbone, pad_id=tokenizer.pad_token_id, eos_id=data.eos_id, decode_text=data.decode,
                           texts=lambda s: (data.sources(s), data.references(s)), target_lang=data.target_lang(),
                           **task_cfg)
    if split == "val":  # validation scores every pair too, with the test decoding
        module.val_decoding, module.val_generate_limit = module.decoding, len(data.references("val"))
    trainer = L.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    results = (trainer.validate if split == "val" else trainer.test)(module, dataloaders=loader, verbose=False)
    metrics = {f"{task}/{key}": float(value) for result in results for key, value in result.items()}
    report = module.test_report if split == "test" else module._score("val", module.decoding)
    if report is not None:
        report.save(run_dir / task / f"eval_{split}", "generation")
        metrics.update({f"{task}/{split}/{name}": float(value) for name, value in report.scores.items()})
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shiftlab-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory written by shiftlab-train")
    parser.add_argument("--task", action="append", help="a task to evaluate (repeatable; default: all of the run's)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_run(args.run_dir, tasks=args.task, split=args.split)
    except (FileNotFoundError, ValueError) as error:
        print(f"shiftlab-eval: {error}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"shiftlab-eval: metrics written to {Path(args.run_dir) / f'eval_{args.split}_metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
