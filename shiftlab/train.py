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

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = run(cfg, run_dir)
    return metrics.get(str(cfg.get("optimize_metric", ""))) if cfg.get("optimize_metric") else None


if __name__ == "__main__":
    main()
