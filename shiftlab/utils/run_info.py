"""What a run records about itself, so a number can be traced back to what produced it.

``run_info.json`` (written when the run starts, updated when it ends): the command line, the
working directory, the git commit of the checkout and whether its tree was dirty, the package
versions, the machine, the seed, the Hydra job (number, sweep directory, overrides), the W&B run
id, the status and the times. A run that fails also leaves ``failure.json`` (the error and its
traceback) instead of ``metrics.json``. Both are written atomically.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import slurm
from .io import write_json_atomic
from .logs import log
from .run_layout import RunLayout

PACKAGES = ("shiftlab", "torch", "lightning", "transformers", "tokenizers", "peft", "hydra-core", "omegaconf",
            "torchmetrics", "wandb", "sacrebleu", "rouge-score", "gguf")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class JobInfo:
    """The Hydra job a run belongs to (``num`` and ``sweep_dir`` only in a multirun; ``choices``:
    the option of each config group it was composed of, ``{"backbone": "tiny_bert", ...}``)."""

    num: int | None = None
    sweep_dir: str | None = None
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)

    @property
    def group(self) -> str | None:
        """The sweep's name (its directory, ``<date>/<time>``), shared by all its jobs."""
        if not self.sweep_dir:
            return None
        parts = Path(self.sweep_dir).parts
        return "sweep-" + "-".join(parts[-2:])


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The checkout's commit and whether its tree differs from it (None outside a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class RunRecord:
    """``run_info.json`` of one run: :meth:`start`, then :meth:`finish` or :meth:`fail`."""

    def __init__(self, run_dir: Path, *, seed: int, job: JobInfo | None = None):
        self.layout = RunLayout(run_dir)
        self.path = self.layout.run_info
        self.failure_path = self.layout.failure
        self.started = time.time()
        self.info: dict[str, Any] = {
            "status": "running",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else None,
            "argv": list(sys.argv),
            "cwd": str(Path.cwd()),
            "started": _iso(self.started),
            "seed": int(seed),
            "job": asdict(job or JobInfo()),
            "git": git_state(),
            "versions": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm": slurm.batch_job(),  # a requeued job recognises its run by it
        }

    def start(self) -> None:
        write_json_atomic(self.path, self.info)

    def update(self, **values: Any) -> None:
        self.info.update(values)
        write_json_atomic(self.path, self.info)

    def finish(self) -> None:
        if self.failure_path.exists():  # an earlier attempt failed and this one (resumed) completed
            os.replace(self.failure_path, self.layout.resumed_failure)
        self.update(status="completed", ended=_iso(time.time()), duration_s=round(time.time() - self.started, 2))

    def fail(self, error: BaseException, stage: str | None, *, signal_name: str | None = None,
             message: str | None = None) -> bool:
        """Record the failure (``failure.json``) and mark the run ``failed``, or ``interrupted``
        when a signal stopped it (``signal_name``); never raises itself. ``message`` replaces the
        error's own text (an interruption's says what to do next). Returns whether ``failure.json``
        was written: when it could not be (a full disk, a directory gone read-only), the failure
        (status, stage, error, traceback) and why it was not recorded are logged instead (an error
        of the ``shiftlab`` logger), and so is a ``run_info.json`` that could not be updated."""
        status = "interrupted" if signal_name else "failed"
        text = message if message is not None else str(error)
        record = {
            "status": status,
            "stage": stage,
            "error": type(error).__name__,
            "message": text,
            "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            "ended": _iso(time.time()),
        }
        if signal_name:
            record["signal"] = signal_name
        failure_error = info_error = None
        try:
            write_json_atomic(self.failure_path, record)
        except OSError as why:
            failure_error = why
        before = self.info.get("status")
        try:
            self.update(status=status, stage=stage, error=f"{type(error).__name__}: {text}", ended=record["ended"],
                        duration_s=round(time.time() - self.started, 2), **({"signal": signal_name} if signal_name else {}))
        except OSError as why:
            info_error = why
        if failure_error is None and info_error is None:
            return True
        lines = []
        if failure_error is not None:
            lines += [f"run {status} in stage {stage!r}: {type(error).__name__}: {text}",
                      f"this failure could not be recorded in {self.failure_path} "
                      f"({type(failure_error).__name__}: {failure_error})", record["traceback"].rstrip("\n")]
        if info_error is not None:
            lines.append(f"{self.path} could not be updated ({type(info_error).__name__}: {info_error}); "
                         f"it still says status {before!r}")
        log.error("\n".join(lines))  # logging handles a stream that is gone itself: this never raises
        return failure_error is None


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))
