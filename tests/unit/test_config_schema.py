"""The typed settings (shiftlab/config_schema.py): one place for every default, and a clear error,
before anything runs, for a misspelt key or a wrong value, whether the config comes from Hydra
(conf/ + overrides) or is made by hand (an older run's config.yaml)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from shiftlab.config_schema import (
    SECTIONS,
    ConfigError,
    DataConfig,
    FinetuneConfig,
    OptimSettings,
    PretrainConfig,
    RunConfig,
    checked,
    compose_checked,
    explain,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
PRETRAIN_KEYS = "batch_size, batch_unit, max_steps, optim, reuse, val_check_interval"
DATA_KEYS = ("cache, corpus, dataset_config_name, dataset_name, dynamic, max_length, name, num_proc, num_workers, "
             "packing, prefetch_factor, sentences_per_sample, test_file, tokenizer, train_file, validation_file, views")

# override -> the same setting in a hand-made config -> the whole message
BAD = {
    "pretrain.max_stepz=3": (
        {"pretrain": {"max_stepz": 3}},
        f"unknown key pretrain.max_stepz (did you mean max_steps?); valid keys of pretrain: {PRETRAIN_KEYS}"),
    "+pretrain.max_stepz=3": (
        {"pretrain": {"max_stepz": 3}},
        f"unknown key pretrain.max_stepz (did you mean max_steps?); valid keys of pretrain: {PRETRAIN_KEYS}"),
    "data.packng=true": (
        {"data": {"packng": True}},
        f"unknown key data.packng (did you mean packing?); valid keys of data: {DATA_KEYS}"),
    "pretrain.optim.lrr=0.1": (
        {"pretrain": {"optim": {"lrr": 0.1}}},
        "unknown key pretrain.optim.lrr (did you mean lr?); valid keys of pretrain.optim: lr, schedule, schedule_kwargs, "
        "warmup_ratio, weight_decay"),
    "seed=abc": ({"seed": "abc"}, "seed must be an int, got 'abc' (str)"),
    "seed=1.7": ({"seed": 1.7}, "seed must be an int, got 1.7 (float)"),
    "seed=-1": ({"seed": -1}, "seed must be in [0, 4294967295] (numpy's seed range), got -1"),
    "pretrain.max_steps=abc": ({"pretrain": {"max_steps": "abc"}}, "pretrain.max_steps must be an int, got 'abc' (str)"),
    "pretrain.max_steps=0": ({"pretrain": {"max_steps": 0}}, "pretrain.max_steps must be > 0, got 0"),
    "pretrain.batch_unit=sentence": (
        {"pretrain": {"batch_unit": "sentence"}},
        "pretrain.batch_unit must be one of samples, sentences, got 'sentence' (did you mean sentences?)"),
    "finetune.name=loraa": (
        {"finetune": {"name": "loraa"}},
        "finetune.name must be one of full, frozen, lora, adalora, prefix, ia3, adapter, got 'loraa' (did you mean lora?)"),
    "finetune.optim.schedule=cosin": (
        {"finetune": {"optim": {"schedule": "cosin"}}},
        "finetune.optim.schedule must be one of linear, cosine, cosine_with_restarts, polynomial, constant, "
        "constant_with_warmup, inverse_sqrt, cosine_with_min_lr, got 'cosin' (did you mean cosine?)"),
    "finetune.max_steps=1.5": ({"finetune": {"max_steps": 1.5}},
                               "finetune.max_steps must be an int or null, got 1.5 (float)"),
    "data.num_workers=-1": ({"data": {"num_workers": -1}}, "data.num_workers must be >= 0, got -1"),
    "data.packing=maybe": ({"data": {"packing": "maybe"}},
                           "data.packing must be a boolean (true or false), got 'maybe' (str)"),
    "data.cache=''": ({"data": {"cache": ""}}, "data.cache must be true, false or a directory, got ''"),
}


def hand_made(**sections) -> dict:
    """The least a config needs, plus ``sections`` (the shape of a run's config.yaml)."""
    cfg = {"backbone": {"name": "tiny_bert"}, "shift": {"name": "token_move"}, "objective": {"name": "mlm"},
           "data": {"name": "synthetic", "corpus": {"_target_": "shiftlab.data.SyntheticCorpus", "n_pretrain": 10}}}
    return OmegaConf.to_container(OmegaConf.merge(cfg, sections))


@pytest.fixture
def hydra_conf():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


@pytest.mark.parametrize("override", list(BAD))
def test_a_bad_setting_names_its_key_through_hydra_and_by_hand(override, hydra_conf):
    setting, message = BAD[override]
    with pytest.raises(ConfigError) as composed:
        compose_checked("train", [override])
    assert str(composed.value) == f"invalid config: {message}"
    with pytest.raises(ConfigError) as by_hand:
        checked(OmegaConf.create(hand_made(**setting)))
    assert str(by_hand.value) == str(composed.value)


@pytest.mark.parametrize("override", ["pretrain.max_stepz=3", "data.packng=true", "seed=abc", "seed=1.7",
                                      "pretrain.max_steps=abc"])
def test_hydra_itself_refuses_misspelt_keys_and_wrong_types_while_composing(override, hydra_conf):
    with pytest.raises(ConfigCompositionException) as error:
        compose("train", overrides=[override])
    assert override.split("=")[0] in str(error.value) + str(error.value.__cause__)
    assert str(explain(error.value)) == f"invalid config: {BAD[override][1]}"  # what compose_checked says


def test_a_misspelt_key_in_a_config_file_fails_composition_too(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "typo.yaml").write_text("# @package _global_\npretrain:\n  max_stepz: 3\n")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with pytest.raises(ConfigError, match=r"unknown key pretrain\.max_stepz \(did you mean max_steps\?\)"):
            compose_checked("train", ["experiment=typo", f"hydra.searchpath=[file://{tmp_path}]"])


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as error:
        checked(OmegaConf.create(hand_made(seed=1.7, pretrain={"max_stepz": 3, "batch_size": 0})))
    assert len(error.value.errors) == 3
    assert str(error.value).startswith("invalid config (3 problems):\n  - seed must be an int, got 1.7 (float)\n")


def test_open_parts_stay_open_and_keep_hydras_plus_rule(hydra_conf):
    cfg = compose_checked("train", ["+data.corpus.extra=1", "+finetune.params.r=4", "+backbone.attn_implementation=sdpa",
                                    "+peft_lr=1e-3"])
    assert cfg.data.corpus.extra == 1 and cfg.finetune.params.r == 4 and cfg.peft_lr == 1e-3
    # without "+", a new key under an open part is still Hydra's error (not one of the schema's)
    with pytest.raises(ConfigCompositionException, match="data.corpus.n_pretrainz") as error:
        compose_checked("train", ["data.corpus.n_pretrainz=1"])
    assert explain(error.value) is None


def test_the_composed_config_shows_every_default_typed(hydra_conf):
    cfg = compose_checked("train")
    for section, schema in SECTIONS.items():
        assert list(cfg[section]) == [f.name for f in dataclasses.fields(schema)], section
        assert OmegaConf.get_type(cfg[section]) is schema
    assert {f.name for f in dataclasses.fields(RunConfig)} <= set(cfg)
    assert (cfg.pretrain.max_steps, cfg.pretrain.optim.lr, cfg.finetune.optim.warmup_ratio) == (600, 2e-3, 0.1)
    assert (cfg.finetune.name, cfg.data.max_length, cfg.data.packing) == ("full", 64, False)  # full.yaml, synthetic.yaml
    assert compose_checked("train", ["data=text"]).data.packing is True
    assert compose_checked("train", ["finetune=frozen"]).finetune.params == {}


def test_an_older_runs_config_gets_the_settings_added_since(tmp_path):
    old = hand_made(seed=3, run_name="x", pretrain={"max_steps": 5, "batch_size": 8, "val_check_interval": 5,
                                                    "optim": {"lr": 0.01, "weight_decay": 0.0, "warmup_ratio": 0.1,
                                                              "schedule": "linear"}},
                    finetune={"max_epochs": 1, "batch_size": 8,
                              "optim": {"lr": 0.001, "weight_decay": 0.01, "warmup_ratio": 0.1, "schedule": "linear"}},
                    data={"tokenizer": "word", "max_length": 32, "num_workers": 0, "views": 1, "dynamic": True})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    loaded = OmegaConf.load(tmp_path / "config.yaml")
    cfg = checked(loaded)
    assert OmegaConf.to_container(loaded) == old  # the input is not changed
    assert (cfg.seed, cfg.run_name, cfg.run_group, cfg.ckpt_path, cfg.optimize_metric) == (3, "x", None, None, None)
    assert (cfg.pretrain.max_steps, cfg.pretrain.reuse, cfg.pretrain.batch_unit) == (5, True, "samples")
    assert (cfg.finetune.name, cfg.finetune.params, cfg.finetune.max_steps) == ("full", {}, None)
    assert (cfg.data.tokenizer, cfg.data.max_length, cfg.data.packing, cfg.data.cache, cfg.data.num_proc,
            cfg.data.prefetch_factor, cfg.data.sentences_per_sample) == ("word", 32, False, True, None, None, 1)
    assert cfg.data.corpus.n_pretrain == 10 and cfg.backbone.name == "tiny_bert"
    assert OmegaConf.to_container(checked(cfg)) == OmegaConf.to_container(cfg)  # idempotent


def test_checked_keeps_interpolations_and_checks_what_they_resolve_to():
    cfg = checked(OmegaConf.create(hand_made(sizes={"steps": 7}, pretrain={"max_steps": "${sizes.steps}",
                                                                           "val_check_interval": "${pretrain.max_steps}"})))
    assert OmegaConf.to_container(cfg.pretrain)["val_check_interval"] == "${pretrain.max_steps}"
    assert cfg.pretrain.val_check_interval == 7
    with pytest.raises(ConfigError, match=r"pretrain\.max_steps must be > 0, got -7"):
        checked(OmegaConf.create(hand_made(sizes={"steps": -7}, pretrain={"max_steps": "${sizes.steps}"})))
    checked(OmegaConf.create(hand_made(pretrain={"max_steps": "${hydra:runtime.choices.x}"})))  # not resolvable here


def test_required_data_settings_are_named():
    with pytest.raises(ConfigError) as error:
        checked(OmegaConf.create({"seed": 0}))
    assert error.value.errors == ["data.name must be set (a string: the data config's name)",
                                  "data.corpus must be set (a mapping with a _target_: the corpus)"]


def test_the_allowed_values_follow_the_code():
    from shiftlab.config_schema import FINETUNE_MODES, SCHEDULES
    from shiftlab.models.finetune_modes import FINETUNE_MODES as CODE_MODES
    from shiftlab.tasks.optim import OptimConfig

    assert FINETUNE_MODES == CODE_MODES
    for schedule in SCHEDULES:
        OptimConfig(schedule=schedule)
    with pytest.raises(ValueError):
        OptimConfig(schedule="cosine_annealing")
    assert dataclasses.asdict(OptimConfig()) == OmegaConf.to_container(OmegaConf.structured(OptimSettings))
    assert {p.stem for p in (CONF / "finetune").glob("*.yaml")} == set(FINETUNE_MODES)
    from shiftlab.config_schema import PROBE_GRIDS
    from shiftlab.probing import GRIDS

    assert set(PROBE_GRIDS) == set(GRIDS)


@pytest.mark.parametrize("group,schema", [("data", DataConfig), ("finetune", FinetuneConfig)])
def test_config_files_set_only_what_differs_from_the_defaults(group, schema):
    defaults = OmegaConf.to_container(OmegaConf.structured(schema))
    for path in (CONF / group).glob("*.yaml"):
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            if key not in ("name", "defaults") and key in defaults:
                assert value != defaults[key], f"{path.name}: {key}: {value!r} restates the default (config_schema.py)"
    train = yaml.safe_load((CONF / "train.yaml").read_text())
    assert not {"pretrain", "finetune", "data", "seed"} & set(train), "conf/train.yaml restates config_schema.py"


def test_pretrain_and_finetune_defaults_are_the_stage_settings():
    assert PretrainConfig().optim.lr == 2e-3 and FinetuneConfig().optim.lr == 1e-3


# The generic data configs read files the user names (tests/unit/test_data_entry_points.py reads them).
OWN_DATA = {"data=conll": ["data.train_file=train.conll"], "data=tsv": ["data.train_file=train.tsv"],
            "data=parallel": ["data.train_file=pairs.tsv"], "data=datasets": ["data.dataset_name=glue"]}


def _configs_to_compose() -> list[list[str]]:
    """Every option of the groups that set data/pretrain/finetune (an experiments/ study: each tier
    with its first row, each row with the cpu tier)."""
    compositions = []
    for group in ("data", "finetune", "debug", "hparams_search", "experiment"):
        for path in sorted((CONF / group).rglob("*.yaml")):
            option = str(path.relative_to(CONF / group).with_suffix(""))
            parts = option.split("/")
            if len(parts) == 3 and parts[1] == "rows":  # experiment/<study>/rows/<row>
                compositions.append([f"experiment={parts[0]}/cpu", f"experiment/{parts[0]}/rows={parts[2]}"])
                continue
            overrides = [f"{group}={option}", *OWN_DATA.get(f"{group}={option}", [])]
            rows = CONF / group / parts[0] / "rows"
            if len(parts) == 2 and rows.is_dir():
                overrides.append(f"experiment/{parts[0]}/rows={sorted(rows.glob('*.yaml'))[0].stem}")
            compositions.append(overrides)
    return compositions


@pytest.mark.parametrize("overrides", _configs_to_compose(), ids=" ".join)
def test_every_config_passes_the_schema(overrides, hydra_conf):
    if overrides[0].startswith("hparams_search="):
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    compose_checked("train", overrides)


def shiftlab_train() -> str:
    script = Path(sys.executable).parent / "shiftlab-train"  # this environment's entry point
    return str(script) if script.exists() else shutil.which("shiftlab-train")


@pytest.mark.parametrize("args", [["pretrain.max_stepz=3"], ["seed=1.7"], ["-m", "seed=0,1,abc"]], ids=" ".join)
def test_the_command_line_stops_before_the_run_directory(args, tmp_path):
    run_dir, sweep_dir = tmp_path / "run", tmp_path / "sweep"
    result = subprocess.run([shiftlab_train(), *args, f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={sweep_dir}"],
                            cwd=tmp_path, env={**os.environ, "SHIFTLAB_OUTPUT": str(tmp_path)}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    message = {"pretrain.max_stepz=3": BAD["pretrain.max_stepz=3"][1], "seed=1.7": BAD["seed=1.7"][1],
               "seed=0,1,abc": BAD["seed=abc"][1]}[args[-1]]
    assert result.stderr == f"shiftlab-train: invalid config: {message}\n"
    assert not run_dir.exists() and not sweep_dir.exists()
    assert not list(tmp_path.rglob("config.yaml"))
