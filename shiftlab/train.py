"""``shiftlab-train`` (same as ``python -m shiftlab.train``): the Hydra entry point.

All the work happens in :func:`shiftlab.pipeline.run`, which receives a resolved config and
the run directory as plain values (``${hydra:...}`` is resolved here, once).

Before Hydra creates a run directory, :func:`preflight` composes the config of the command line
and checks it against :mod:`shiftlab.config_schema` (a sweep: every value of each swept key): a
misspelt key or a wrong value exits with status 2 and one message, before anything is written.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from shiftlab.compatibility import check_components
from shiftlab.config_schema import ConfigError, checked, compose_checked
from shiftlab.utils.upstream_warnings import silence_known_upstream_warnings

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# Tokenizers' own thread pool and forked data-loader workers do not mix.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Lightning prints through its own handler; without this Hydra's root handler prints it twice.
logging.getLogger("lightning.pytorch").propagate = False


# A sweep's preflight composes its first job, then each other value of each swept key once, at most:
PREFLIGHT_MAX_COMPOSITIONS = 64


def main() -> None:
    """``shiftlab-train``: :func:`preflight`, then the Hydra app (:func:`train`)."""
    silence_known_upstream_warnings()
    preflight(sys.argv[1:])
    train()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def train(cfg: DictConfig) -> float | None:
    from hydra.types import RunMode

    from shiftlab.pipeline import run
    from shiftlab.stages.resume import RunDirectoryError
    from shiftlab.utils.run_info import JobInfo

    try:  # preflight checked the command line's config; this checks each job of any sweep
        cfg = checked(cfg)
        check_components(cfg)
    except ConfigError as error:
        config_error_exit(error)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    job = JobInfo(overrides=list(hydra_cfg.overrides.task),
                  choices={group: str(option) for group, option in hydra_cfg.runtime.choices.items()
                           if option is not None and not group.startswith("hydra/")})
    if hydra_cfg.mode == RunMode.MULTIRUN:
        job.num, job.sweep_dir = int(hydra_cfg.job.num), str(hydra_cfg.sweep.dir)
        cfg.run_group = job.group  # one W&B group per sweep
    try:
        metrics = run(cfg, run_dir, job)
    except RunDirectoryError as error:  # nothing ran: one message, no traceback
        sys.stderr.write(f"shiftlab-train: {error}\n")
        sys.exit(2)
    return objective_value(metrics, cfg.optimize_metric)


def objective_value(metrics: dict[str, float], key: str | None) -> float | None:
    """What a sweeper optimises: ``optimize_metric`` from this job's metrics (None when unset)."""
    if not key:
        return None
    if key not in metrics:
        raise KeyError(f"optimize_metric={key!r} is not among this run's metrics: "
                       + ", ".join(sorted(k for k in metrics if "/val/" in k)) + " (validation metrics listed)")
    return float(metrics[key])


def config_error_exit(error: ConfigError) -> None:
    """Print a config error as one message (no traceback) and exit with status 2."""
    sys.stderr.write(f"shiftlab-train: {error}\n")
    sys.stderr.flush()
    sys.exit(2)


def preflight(argv: list[str]) -> None:
    """Compose and check the config of a ``shiftlab-train`` command line before Hydra starts the
    job (and makes its run directory); exit on a :class:`ConfigError`. With ``-m``, the sweep's
    first job, then every other value of each swept key (one key at a time). Anything this cannot
    compose (an unknown group option, a mandatory ``???`` group...) is left to Hydra to report, as
    are command lines with --config-path/--config-dir or that do not run the app (--help, --info)."""
    from hydra import initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra

    try:
        args, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:  # --version, or arguments Hydra will reject itself
        return
    if (args.help or args.hydra_help or args.info or args.shell_completion or args.experimental_rerun
            or args.config_path or args.config_dir or GlobalHydra.instance().is_initialized()):
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="train"):
        try:
            jobs = _preflight_jobs(list(args.overrides), GlobalHydra.instance().config_loader()) if args.multirun \
                else [list(args.overrides)]
            for overrides in jobs:
                check_components(compose_checked(args.config_name or "train", overrides))
        except ConfigError as error:
            config_error_exit(error)
        except Exception:  # not a schema problem: Hydra reports it with its own message
            return


def _preflight_jobs(overrides: list[str], config_loader) -> list[list[str]]:
    """The override lists a sweep's preflight composes: the first value of every swept key, then,
    one key at a time, each of its other values (interval sweeps: their start)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    choices: list[list[str]] = []
    for override in parsed:
        if override.is_discrete_sweep():
            values = [f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()]
        elif override.is_interval_sweep():
            values = [f"{override.get_key_element()}={override.value().start}"]
        else:
            values = [override.input_line]
        choices.append(values or [override.input_line])
    first = [values[0] for values in choices]
    jobs = [first]
    for i, values in enumerate(choices):
        for value in values[1:]:
            if len(jobs) >= PREFLIGHT_MAX_COMPOSITIONS:
                return jobs
            jobs.append(first[:i] + [value] + first[i + 1:])
    return jobs


if __name__ == "__main__":
    main()
