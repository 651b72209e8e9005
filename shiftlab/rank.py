"""``python -m shiftlab.rank RUN_DIR CONFIG``: rank > 0 of a job whose ranks shiftlab started
(:func:`shiftlab.distributed.distributed_job`). It runs the same job as rank 0, from rank 0's
resolved config, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from shiftlab.config import register_resolvers
from shiftlab.pipeline import run


def main(argv: list[str]) -> int:
    run_dir, config_path = Path(argv[0]), Path(argv[1])
    register_resolvers()
    run(OmegaConf.load(config_path), run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
