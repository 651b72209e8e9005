"""The probe as a run's last stage (``probe.enabled=true``): each classification / tagging task of
the run, probed from its export exactly as ``shiftlab-probe RUN_DIR`` would, before metrics.json
is written, so a sweep's jobs carry their probes and a probe that fails fails the run."""

from __future__ import annotations

from pathlib import Path

from .grid import conditions_for
from .report import record_in_run, write_probe
from .runner import run_probe
from .targets import from_run


def check_probe_settings(cfg) -> None:
    """A misspelt ``probe.conditions`` entry fails before any training, naming the condition."""
    if cfg.probe.enabled:
        try:
            conditions_for(cfg.probe.grid, list(cfg.probe.conditions))
        except ValueError as error:
            raise ValueError(f"probe.conditions: {error}") from None


def probe_run(cfg, run_dir: str | Path, *, progress: bool = False) -> list[Path]:
    """Probe every classification / tagging task of the run in ``run_dir``; return what was written."""
    settings = cfg.probe
    conditions = conditions_for(settings.grid, list(settings.conditions))
    written: list[Path] = []
    for target in from_run(Path(run_dir), require_metrics=False):
        result = run_probe(target, conditions, draws=int(settings.draws), seed=int(settings.seed), progress=progress)
        written += write_probe(result, target.out_dir)
        written.append(record_in_run(result, run_dir))
    return written
