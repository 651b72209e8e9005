"""Which stages of a run finished, and the checkpoint an unfinished one resumes from."""

from __future__ import annotations

import json
from pathlib import Path

from shiftlab.distributed import is_rank_zero
from shiftlab.utils.io import write_json_atomic
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
        print(f"shiftlab: {stage}: finished before, skipped (ckpt_path={self.ckpt_path})", flush=True)
        return json.loads(marker.read_text(encoding="utf-8"))

    def checkpoint(self, stage: str) -> str | None:
        if self.ckpt_path is None:
            return None
        if self.ckpt_path != "last":
            path, self.ckpt_path = self.ckpt_path, "last"  # an explicit path serves the first stage only
            return path
        last = self.layout.last_checkpoint(stage)
        if last.is_file():
            print(f"shiftlab: {stage}: resuming from {last}", flush=True)
            return str(last)
        return None

    def mark_finished(self, stage: str, results: dict[str, float]) -> None:
        if is_rank_zero():
            write_json_atomic(self.layout.stage_marker(stage), results)
