"""Where a run keeps its files: one object, used by the pipeline, ``shiftlab-eval``,
``shiftlab-table`` and the run records, so the layout is written down once.

    <run>/config.yaml            the resolved config (what the run was asked to do)
    <run>/run_info.json          command, commit, versions, status, times (utils.run_info)
    <run>/metrics.json           flat metrics of every stage, written last: the run finished
    <run>/failure.json           instead of metrics.json when it did not
    <run>/<stage>/stage.json     a finished stage's metrics (resume skips it)
    <run>/<stage>/checkpoints/   Lightning checkpoints (last.ckpt resumes the stage)
    <run>/pretrain/backbone/     the shift-pretrained backbone, in transformers' format
    <run>/<task>/adapter/        what fine-tuning trained (whole model, PEFT adapter or prefix) + head
    <run>/<task>/model/          the standard transformers export (AutoModelFor<Task> / AutoPeftModelFor<Task>)
                                 and its model card README.md (shiftlab.exports)
    <run>/<task>/base/           the random-init (or resized) model a non-full fine-tuning adapted, where
                                 nothing else holds it (shiftlab-eval and the PEFT export load it)
    <run>/<task>/hub/            what export.push_to_hub uploaded in place of a PEFT adapter on a local base
    <run>/<task>/reports/        the task's test reports
    <run>/<task>/eval_<split>/   reports of a re-evaluation (shiftlab-eval)
    <run>/eval_<split>_metrics.json
    <run>/<task>/probe/          a word-order probe of the task's model (shiftlab-probe)
    <run>/probe_metrics.json     the probes' means as flat metrics (shiftlab-table reads them with metrics.json)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRETRAIN = "pretrain"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # Files of the whole run.
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run_info(self) -> Path:
        return self.root / "run_info.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def failure(self) -> Path:
        return self.root / "failure.json"

    @property
    def resumed_failure(self) -> Path:
        """Where an earlier attempt's failure record goes once a resumed attempt completes."""
        return self.root / "failure.resumed.json"

    @property
    def wandb_id(self) -> Path:
        return self.root / "wandb_run_id"

    def rank_log(self, rank: int) -> Path:
        return self.root / f"rank{rank}.log"

    def eval_metrics(self, split: str) -> Path:
        return self.root / f"eval_{split}_metrics.json"

    @property
    def probe_metrics(self) -> Path:
        return self.root / "probe_metrics.json"

    # Files of one stage (``pretrain`` or a task name).
    def stage(self, stage: str) -> Path:
        return self.root / stage

    def stage_marker(self, stage: str) -> Path:
        return self.root / stage / "stage.json"

    def checkpoints(self, stage: str) -> Path:
        return self.root / stage / "checkpoints"

    def last_checkpoint(self, stage: str) -> Path:
        return self.checkpoints(stage) / "last.ckpt"

    def hpc_checkpoints(self, stage: str) -> list[Path]:
        """SLURM requeue checkpoints (``hpc_ckpt_<n>.ckpt``): shiftlab's, in ``checkpoints/``, and
        those of Lightning's own handler, in the stage directory."""
        return sorted([*self.checkpoints(stage).glob("hpc_ckpt_*.ckpt"), *(self.root / stage).glob("hpc_ckpt_*.ckpt")])

    @property
    def pretrained_backbone(self) -> Path:
        return self.root / PRETRAIN / "backbone"

    def adapter(self, task: str) -> Path:
        return self.root / task / "adapter"

    def model(self, task: str) -> Path:
        return self.root / task / "model"

    def base(self, task: str) -> Path:
        return self.root / task / "base"

    def hub_model(self, task: str) -> Path:
        return self.root / task / "hub"

    def reports(self, task: str) -> Path:
        return self.root / task / "reports"

    def eval_reports(self, task: str, split: str) -> Path:
        return self.root / task / f"eval_{split}"

    # The files shiftlab-table reads (in this order of importance).
    RECORD_FILES = ("config.yaml", "metrics.json", "run_info.json", "failure.json")
