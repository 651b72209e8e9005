"""What a run tells its log (``train.log`` and the console, :mod:`shiftlab.utils.logs`): a short
summary of its settings when it starts, each stage's results and files when the stage ends, so the
log alone says what ran, what it gave and where it put it. The full config is ``config.yaml``."""

from __future__ import annotations

from pathlib import Path

# The config groups a run is composed of, in the order they are shown; then those that are often
# unset (shown only when chosen).
GROUPS = ("backbone", "data", "shift", "objective", "task", "finetune", "trainer")
OPTIONAL_GROUPS = ("experiment", "debug", "hparams_search")


def config_summary(cfg, choices: dict[str, str] | None = None) -> str:
    """``choices``: the option Hydra composed for each group (``hydra.runtime.choices``); without
    them (no Hydra) each group's ``name`` in the config stands in."""
    choices = dict(choices or {})
    picked = []
    for group in GROUPS + OPTIONAL_GROUPS:
        value = choices.get(group)
        if value is None and group in GROUPS:
            section = cfg.get(group)
            value = section.get("name") if hasattr(section, "get") else None
        if value is not None:
            picked.append(f"{group}={value}")
    lines = ["config: " + " ".join(picked),
             f"  seed={cfg.seed} run_name={cfg.run_name}" + (f" ckpt_path={cfg.ckpt_path}" if cfg.ckpt_path else "")]
    pretrain = cfg.pretrain
    if cfg.objective.get("heads"):
        lines.append(f"  pretrain: max_steps={pretrain.max_steps} batch_size={pretrain.batch_size} "
                     f"({pretrain.batch_unit}) lr={pretrain.optim.lr} val_check_interval={pretrain.val_check_interval} "
                     f"reuse={pretrain.reuse}")
    else:
        lines.append("  pretrain: none (objective has no heads)")
    finetune = cfg.finetune
    lines.append(f"  finetune: mode={finetune.name} max_epochs={finetune.max_epochs} max_steps={finetune.max_steps} "
                 f"batch_size={finetune.batch_size} lr={finetune.optim.lr}")
    trainer = cfg.trainer
    lines.append(f"  trainer: accelerator={trainer.get('accelerator')} devices={trainer.get('devices')} "
                 f"precision={trainer.get('precision')}")
    return "\n".join(lines)


def stage_results(stage: str, results: dict[str, float]) -> str:
    """``<stage>: <metric> <value>, ...`` (every metric the stage returned, in ``metrics.json`` as
    ``<stage>/<metric>``)."""
    shown = ", ".join(f"{key} {_number(value)}" for key, value in sorted(results.items()))
    return f"{stage}: {shown or 'no metrics'}"


def stage_files(stage: str, directory: Path) -> str | None:
    """``<stage>: files in <dir>: backbone/, checkpoints/, metrics.csv, ...``; None when the stage
    wrote nothing (no directory)."""
    if not directory.is_dir():
        return None
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    return f"{stage}: files in {directory.resolve()}: {', '.join(entries)}"


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # counts (trainable_params, reused) in full
    return f"{value:.4g}" if isinstance(value, float) else str(value)
