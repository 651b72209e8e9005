"""Hydra multirun sweeps from the command line: one directory, one metrics.json and one W&B run
per job; a failing job leaves a failure record and the rest of the sweep still runs; every run
records where it came from (run_info.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sweep(tmp_path: Path, *overrides: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, list[Path]]:
    env = dict(os.environ, SHIFTLAB_OUTPUT=str(tmp_path), WANDB_MODE="offline", WANDB_SILENT="true")
    result = subprocess.run([sys.executable, "-m", "shiftlab.train", "-m", *overrides, "debug=smoke",
                             "trainer.enable_progress_bar=false"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    sweeps = list((tmp_path / "debug" / "multirun").glob("*/*"))  # debug=* runs keep to <output root>/debug
    assert len(sweeps) == 1, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = sorted((p for p in sweeps[0].iterdir() if p.is_dir() and p.name[0].isdigit()), key=lambda p: int(p.name.split("_")[0]))
    return result, jobs


@pytest.mark.slow
def test_a_2x2_sweep_gives_four_jobs_four_metrics_and_four_wandb_runs(tmp_path):
    result, jobs = sweep(tmp_path, "shift=identity,token_move", "seed=0,1", "logger=wandb")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [int(job.name.split("_")[0]) for job in jobs] == [0, 1, 2, 3]
    names = set()
    for job in jobs:
        assert (job / "metrics.json").is_file(), job
        info = json.loads((job / "run_info.json").read_text())
        assert info["status"] == "completed" and info["job"]["sweep_dir"] == str(jobs[0].parent)
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{job}: {runs}"  # its own W&B run, not the first job's
        logged = next(runs[0].glob("*.wandb")).read_bytes()
        shift, seed = info["job"]["overrides"][:2]
        name = f"tiny_bert-{shift.split('=')[1]}-token_restore-full-s{seed.split('=')[1]}"
        assert name.encode() in logged and b"sweep-" in logged  # its name, and the sweep's group
        assert b"entities-test/acc" in logged  # the fine-tuning stage logged into the job's run
        names.add(name)
    assert len(names) == 4


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    # A value the config checks cannot know is wrong (shiftlab.compatibility checks an objective's
    # parameter names, not their values): the objective refuses it when the stage builds it.
    result, jobs = sweep(tmp_path, "objective=detect", "+objective.heads.detect.classes=5,2", "logger=none")
    assert result.returncode != 0  # the sweep reports the failure...
    failed, succeeded = jobs
    failure = json.loads((failed / "failure.json").read_text())
    assert failure["stage"] == "pretrain" and "classes must be 2" in failure["message"]
    assert "Traceback" in failure["traceback"]
    assert not (failed / "metrics.json").exists()
    assert json.loads((failed / "run_info.json").read_text())["status"] == "failed"
    assert (succeeded / "metrics.json").is_file()  # ...after running the job that came after it


def test_run_info_records_the_source_and_versions(tmp_path):
    from shiftlab.utils.run_info import JobInfo, RunRecord, git_state

    record = RunRecord(tmp_path, seed=3, job=JobInfo(num=2, sweep_dir="/x/multirun/2026-01-02/03-04-05-000006"))
    record.start()
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["status"] == "running" and info["seed"] == 3 and info["job"]["num"] == 2
    assert info["versions"]["torch"] and info["versions"]["shiftlab"]
    state = git_state()
    if state["commit"] is not None:  # a git checkout (CI's clean clone is one)
        assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)
    assert JobInfo(sweep_dir="/x/multirun/2026-01-02/03-04-05-000006").group == "sweep-2026-01-02-03-04-05-000006"
    record.finish()
    assert json.loads((tmp_path / "run_info.json").read_text())["status"] == "completed"


def test_unique_suffix_differs_at_every_call():
    from shiftlab.config import unique_suffix

    assert len({unique_suffix() for _ in range(50)}) == 50


@pytest.mark.slow
def test_an_optuna_search_runs_resumes_from_its_sqlite_study_and_reports_the_best(tmp_path):
    optuna = pytest.importorskip("optuna", reason="needs the sweeps extra (pip install -e '.[sweeps]')")
    overrides = ["hparams_search=optuna", "hydra.sweeper.n_trials=3", "logger=none", "callbacks=none"]
    env = dict(os.environ, SHIFTLAB_OUTPUT=str(tmp_path))
    command = [sys.executable, "-m", "shiftlab.train", "-m", *overrides, "debug=smoke", "trainer.enable_progress_bar=false"]
    for _ in range(2):  # the second run continues the same study
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Best parameters" in result.stdout + result.stderr
        assert "#0 : pretrain.optim.lr=" in result.stdout  # each trial's parameters are shown...
        assert "setup plugin" not in result.stdout + result.stderr  # ...not Optuna's storage (alembic) setting up
    # Named by the experiment, the run (data, backbone, shift, objective) and the metric; a debug=*
    # search keeps its study and runs under <output root>/debug.
    name = "quickstart-synthetic-tiny_bert-token_move-token_restore-order_val_acc"
    assert [p.name for p in (tmp_path / "debug" / "optuna").iterdir()] == [f"{name}.db"]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'debug' / 'optuna' / f'{name}.db'}")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 6
    assert set(study.best_params) == {"pretrain.optim.lr", "shift.params.rate", "finetune.optim.lr"}
    results = list((tmp_path / "debug" / "multirun").glob("*/*/optimization_results.yaml"))
    assert len(results) == 2 and "best_value" in results[0].read_text()


def test_a_missing_optimize_metric_names_the_validation_metrics():
    from shiftlab.train import objective_value

    assert objective_value({"order/val/acc": 0.75}, "order/val/acc") == 0.75
    assert objective_value({"order/val/acc": 0.75}, None) is None
    with pytest.raises(KeyError, match="order/val/accuracy.*order/val/acc"):
        objective_value({"order/val/acc": 0.75, "order/test/acc": 0.7}, "order/val/accuracy")


@pytest.mark.slow
def test_launcher_local_runs_each_job_in_its_own_process(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the sweeps extra (hydra-submitit-launcher)")
    result, jobs = sweep(tmp_path, "launcher=local", "shift=identity,token_move", "logger=none", "callbacks=none")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(jobs) == 2 and all((job / "metrics.json").is_file() for job in jobs)
    pids = {json.loads((job / "run_info.json").read_text())["pid"] for job in jobs}
    assert len(pids) == 2  # two processes, neither of them a rerun of the sweep
    assert not list((tmp_path / "debug" / "multirun").glob("*/*/*/multirun.yaml"))
    assert not (tmp_path / "multirun").exists()  # nothing among real runs
