"""Small helpers every stage shares."""

from __future__ import annotations

import lightning as L


def seed_stage(cfg) -> None:
    """Every stage starts from the run's seed, so its initialisation does not depend on what ran
    before it in this process (a stage skipped on resume, the number of processes)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)


def retire_requeue_checkpoints(trainer) -> None:
    """After a stage's training: remove the SLURM requeue checkpoints Lightning's own handler left
    in its directory (``hpc_ckpt_<n>.ckpt``). Under SLURM, Lightning loads such a file whenever
    ``validate`` or ``test`` is called without a checkpoint, which would evaluate the weights of
    the requeue instead of the trained ones. (shiftlab's own requeue checkpoints are kept under
    ``checkpoints/``, where Lightning does not look: :class:`~shiftlab.tasks.resume.InterruptCheckpoint`.)"""
    from pathlib import Path

    from shiftlab.distributed import barrier, is_rank_zero

    if is_rank_zero():
        for path in Path(trainer.default_root_dir).glob("hpc_ckpt_*.ckpt"):
            path.unlink(missing_ok=True)
    barrier()


def numbers(results: list[dict]) -> dict[str, float]:
    """Lightning's ``validate`` / ``test`` results (one dict per loader) as one flat dict of floats."""
    flat: dict[str, float] = {}
    for result in results:
        flat.update({k: float(v) for k, v in result.items()})
    return flat


def prefixed(stage: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{stage}/{key}": value for key, value in values.items()}


def format_summary(metrics: dict[str, float]) -> str:
    rows = [f"  {key:<40} {value:.4f}" for key, value in sorted(metrics.items()) if "/test/" in key or key.endswith("val/loss")]
    return "results\n" + "\n".join(rows)
