"""Every experiment preset runs end to end under debug=smoke: a handful of steps in each stage
(shift pretraining, fine-tuning per task, validation, test, reports, exports), in process."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from shiftlab.pipeline import run

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
SHARED = ROOT.parent / "shared" / "data"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_experiment(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"experiment={name}", "debug=smoke", "logger=none",
                                           "trainer.enable_progress_bar=false", *overrides])


def needs(cfg) -> str | None:
    """Why this experiment cannot run here (missing data or model package), or None."""
    raw = OmegaConf.to_container(cfg.data.corpus, resolve=False)
    if any("paths.shared_data" in str(value) for value in raw.values()) and not SHARED.exists():
        return f"needs the real datasets in {SHARED}"
    if raw.get("segment") == "jieba" and importlib.util.find_spec("jieba") is None:
        return "needs jieba (Chinese word segmentation): pip install 'shiftlab[chinese]'"
    try:
        OmegaConf.to_container(cfg.backbone, resolve=True)
    except Exception as error:  # the resolver's message names the package to install
        return f"backbone unavailable: {error}"
    return None


def test_debug_smoke_caps_every_stage():
    cfg = compose_experiment("quickstart")
    assert cfg.pretrain.max_steps == 2 and cfg.finetune.max_steps == 2
    assert cfg.trainer.limit_val_batches == 2 and cfg.trainer.limit_test_batches == 2


# Smoke overrides that keep the suite short without losing what the preset is for: SmolLM2 writing
# headlines is SmolLM2 generating (tatoeba_smollm2, here) on the headline task (which the tiny
# decoder runs here and in tests/unit/test_causal_generation.py); tatoeba_smollm2's shift
# pretraining (clm_shifted on local_shuffle, then a 0.5 GB export) is smollm2_sst2's, which runs
# here in full. Each SmolLM2 generation smoke costs about a minute on 2 cores.
SMOKE_OVERRIDES = {"bbc_headline_smollm2": ["backbone=tiny_gpt2"],
                   "tatoeba_smollm2": ["objective=none", "task.tasks.translation.decoding.max_new_tokens=16",
                                       "task.tasks.translation.val_decoding.max_new_tokens=16"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_under_debug_smoke(name, tmp_path):
    cfg = compose_experiment(name, *SMOKE_OVERRIDES.get(name, []))
    reason = needs(cfg)
    if reason:
        pytest.skip(reason)
    metrics = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    if cfg.objective.heads:
        assert "pretrain/val/loss" in metrics and (tmp_path / "pretrain" / "backbone").is_dir()
    tasks = {key.split("/")[0] for key in metrics if "/test/" in key}
    assert tasks, "no task was tested"
    for task in tasks:
        assert (tmp_path / task / "reports").is_dir(), task
        assert any((tmp_path / task / "adapter").iterdir()), task


DEBUG_MODES = sorted(p.stem for p in (CONF / "debug").glob("*.yaml"))
SMALL = ["data.corpus.n_pretrain=200", "data.corpus.n_train=80", "data.corpus.n_val=80", "data.corpus.n_test=80",
         "pretrain.batch_size=8", "finetune.batch_size=8", "task=order",
         "pretrain.max_steps=40", "pretrain.val_check_interval=20"]  # the wiring is checked, not the training


@pytest.mark.slow
@pytest.mark.parametrize("mode", DEBUG_MODES)
def test_every_debug_mode_runs_the_quickstart(mode, tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"debug={mode}", "logger=csv_tensorboard", "trainer.enable_progress_bar=false",
                                          *SMALL])
    if mode == "overfit":  # shorter than the preset; the wiring is what is checked
        cfg.pretrain.max_steps, cfg.finetune.max_epochs = 10, 2
    metrics = run(cfg, tmp_path)
    assert "order/test/acc" in metrics and "pretrain/val/loss" in metrics
    if mode != "fast_dev_run":  # fast_dev_run turns the loggers off
        assert list((tmp_path / "order").glob("events.out.tfevents.*")), "no TensorBoard events written"
        # the resolved config reaches the loggers: the stage's hparams.yaml (CSV's and TensorBoard's)
        hparams = OmegaConf.load(tmp_path / "order" / "hparams.yaml")
        assert hparams.seed == cfg.seed and hparams.backbone.name == cfg.backbone.name
