"""Small helpers every stage shares."""

from __future__ import annotations

import lightning as L


def seed_stage(cfg) -> None:
    """Every stage starts from the run's seed, so its initialisation does not depend on what ran
    before it in this process (a stage skipped on resume, the number of processes)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)


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
    return "shiftlab: results\n" + "\n".join(rows)
