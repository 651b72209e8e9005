"""``shiftlab-train`` (same as ``python -m shiftlab.train``): the Hydra entry point.

All the work happens in :func:`shiftlab.pipeline.run`, which receives a resolved config and
the run directory as plain values (``${hydra:...}`` is resolved here, once).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# Tokenizers' own thread pool and forked data-loader workers do not mix.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Lightning prints through its own handler; without this Hydra's root handler prints it twice.
logging.getLogger("lightning.pytorch").propagate = False


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from shiftlab.pipeline import run

    from hydra.types import RunMode

    from shiftlab.utils.run_info import JobInfo

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    job = JobInfo(overrides=list(hydra_cfg.overrides.task))
    if hydra_cfg.mode == RunMode.MULTIRUN:
        job.num, job.sweep_dir = int(hydra_cfg.job.num), str(hydra_cfg.sweep.dir)
        cfg.run_group = job.group  # one W&B group per sweep
    metrics = run(cfg, run_dir, job)
    return objective_value(metrics, cfg.get("optimize_metric"))


def objective_value(metrics: dict[str, float], key: str | None) -> float | None:
    """What a sweeper optimises: ``optimize_metric`` from this job's metrics (None when unset)."""
    if not key:
        return None
    if key not in metrics:
        raise KeyError(f"optimize_metric={key!r} is not among this run's metrics: "
                       + ", ".join(sorted(k for k in metrics if "/val/" in k)) + " (validation metrics listed)")
    return float(metrics[key])


if __name__ == "__main__":
    main()
