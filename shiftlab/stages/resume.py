"""Which stages of a run finished, and the checkpoint an unfinished one resumes from."""

from __future__ import annotations

import json
from pathlib import Path

from shiftlab.distributed import is_rank_zero
from shiftlab.utils.io import write_json_atomic
from shiftlab.utils.logs import log
from shiftlab.utils.run_layout import RunLayout


class Resume:
    """``ckpt_path``: None (a fresh run), ``last`` (skip the stages that finished, each recorded in
    ``<run>/<stage>/stage.json``, and resume the interrupted one from its ``last.ckpt``), or a path
    (the first unfinished stage resumes from it)."""

    def __init__(self, ckpt_path: str | None, run_dir: Path | RunLayout):
        self.ckpt_path = None if ckpt_path in (None, "", "null") else str(ckpt_path)
        self.layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(run_dir)
        if self.ckpt_path not in (None, "last") and not Path(self.ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={self.ckpt_path}: no such checkpoint file")

    def finished(self, stage: str) -> dict[str, float] | None:
        marker = self.layout.stage_marker(stage)
        if self.ckpt_path is None or not marker.is_file():
            return None
        log.info("%s: finished before, skipped (ckpt_path=%s)", stage, self.ckpt_path)
        return json.loads(marker.read_text(encoding="utf-8"))

    def checkpoint(self, stage: str) -> str | None:
        if self.ckpt_path is None:
            return None
        if self.ckpt_path != "last":
            path, self.ckpt_path = self.ckpt_path, "last"  # an explicit path serves the first stage only
            return path
        # last.ckpt, or a SLURM requeue checkpoint if that is newer
        candidates = [p for p in (self.layout.last_checkpoint(stage), *self.layout.hpc_checkpoints(stage)) if p.is_file()]
        if not candidates:
            return None
        newest = max(candidates, key=lambda p: p.stat().st_mtime_ns)
        log.info("%s: resuming from %s", stage, newest)
        return str(newest)

    def mark_finished(self, stage: str, results: dict[str, float]) -> None:
        if is_rank_zero():
            write_json_atomic(self.layout.stage_marker(stage), results)


# A run directory belongs to one run -------------------------------------------------------------

# Config keys that may differ between a run and its resumption: where and how it runs, what it
# logs, how fast data arrives; never what it computes. Prefixes match whole dotted keys.
SAFE_ON_RESUME = ("ckpt_path", "logger", "callbacks", "launcher", "hparams_search", "paths", "run_name", "run_group",
                  "optimize_metric", "trainer.devices", "trainer.num_nodes", "trainer.enable_progress_bar",
                  "trainer.progress_refresh_rate", "trainer.enable_model_summary", "trainer.log_every_n_steps",
                  "trainer.profiler", "data.num_workers", "data.num_proc", "data.prefetch_factor", "data.cache",
                  "pretrain.reuse")
# What Hydra puts in a run directory before the run starts, and the run's lock file.
_NOT_A_RUN = (".hydra", "train.log", ".lock")


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked: another run's, or not the run to resume."""


def continue_requeued_job(cfg, layout: RunLayout):
    """``cfg`` with ``ckpt_path=last`` when this process is SLURM's restart of the requeued batch
    job whose run is in ``layout`` (:mod:`shiftlab.utils.slurm`); else ``cfg`` unchanged. The
    resumption is then checked like any other (:func:`check_run_directory`)."""
    from omegaconf import open_dict

    from shiftlab.utils import slurm

    if cfg.ckpt_path not in (None, "", "null") or not layout.run_info.is_file():
        return cfg
    try:
        info = json.loads(layout.run_info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return cfg
    if not slurm.is_requeue_of(info):
        return cfg
    job = slurm.batch_job()
    log.info("SLURM job %s restarted (restart %s): continuing its run in %s as ckpt_path=last", job["job_id"],
             job["restart_count"], layout.root)
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.ckpt_path = "last"
    return cfg


def check_run_directory(cfg, layout: RunLayout) -> None:
    """Refuse, before anything is written, a new run into a directory that holds a run, and a
    resumption whose config differs from the stored one in anything but :data:`SAFE_ON_RESUME`."""
    from omegaconf import OmegaConf

    root = layout.root
    resume = cfg.ckpt_path not in (None, "", "null")
    used = sorted(p.name for p in root.iterdir() if p.name not in _NOT_A_RUN) if root.is_dir() else []
    if not resume:
        if used:
            raise RunDirectoryError(
                f"{root} already holds a run ({', '.join(used[:5])}{', ...' if len(used) > 5 else ''}): a new run "
                f"would overwrite it. To continue that run: the same command with ckpt_path=last "
                f"hydra.run.dir={root}; to start a new one: another hydra.run.dir (or none: each run gets its own)")
        return
    if not layout.config.is_file():
        if cfg.ckpt_path == "last":
            raise RunDirectoryError(
                f"ckpt_path=last resumes the run in hydra.run.dir, and {root} holds none (no config.yaml): give the "
                "directory of the run to resume, hydra.run.dir=<that run>")
        return  # an explicit checkpoint file, into a new directory
    from shiftlab.config_schema import checked

    stored = _flat(OmegaConf.to_container(checked(OmegaConf.load(layout.config)), resolve=True))
    for key, value in _common_trainer_defaults().items():  # a run made before they were listed: the same values
        stored.setdefault(f"trainer.{key}", value)
    asked = _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = [key for key in sorted(set(stored) | set(asked))
               if stored.get(key, _ABSENT) != asked.get(key, _ABSENT) and not _safe(key)]
    if changed:
        shown = [f"{key} ({_show(stored.get(key, _ABSENT))} -> {_show(asked.get(key, _ABSENT))})" for key in changed[:8]]
        raise RunDirectoryError(
            f"resume refused: this config differs from the run's ({layout.config}) in {len(changed)} setting(s): "
            f"{'; '.join(shown)}{'; ...' if len(changed) > 8 else ''}. Resume with the run's own settings, or start a "
            f"new run in another directory. Settings that may change on resume: {', '.join(SAFE_ON_RESUME)}")


_ABSENT = object()


def _common_trainer_defaults() -> dict:
    """``conf/trainer_common/lightning.yaml``: Trainer arguments at Lightning's defaults that every
    trainer config lists (a run directory from before they were listed lacks them)."""
    from omegaconf import OmegaConf

    from shiftlab.config import project_root

    path = Path(project_root()) / "conf" / "trainer_common" / "lightning.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}


def _safe(key: str) -> bool:
    return any(key == safe or key.startswith(safe + ".") for safe in SAFE_ON_RESUME)


def _show(value) -> str:
    return "absent" if value is _ABSENT else repr(value)


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat if flat or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


class RunDirectoryLock:
    """``with RunDirectoryLock(layout):`` this process owns the run directory; a second process
    given the same directory fails at once, naming it."""

    def __init__(self, layout: RunLayout):
        from filelock import FileLock

        layout.root.mkdir(parents=True, exist_ok=True)
        self.path = layout.root / ".lock"
        self.lock = FileLock(str(self.path), timeout=0)

    def __enter__(self) -> "RunDirectoryLock":
        from filelock import Timeout

        try:
            self.lock.acquire()
        except Timeout:
            raise RunDirectoryError(f"{self.path.parent} is in use by another shiftlab process (its lock: {self.path}); "
                                    "give this run another hydra.run.dir") from None
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()
