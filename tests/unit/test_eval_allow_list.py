"""``shiftlab-eval RUN_DIR`` instantiates only shiftlab's own components from ``RUN_DIR/config.yaml``
(plus the prefixes of ``$SHIFTLAB_ALLOWED_TARGETS``): a run directory passed on by someone else
cannot run ``os.system`` through a ``_target_``. The refusal comes before anything is built."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import shiftlab.run_context as run_context
from shiftlab.evaluate import evaluate_run, main
from shiftlab.run_context import RunContext
from shiftlab.utils.trusted_targets import ALLOWED_TARGETS_ENV, UntrustedTargetError, check_corpus_targets

CONF = Path(__file__).resolve().parents[2] / "conf"
DATA_OPTIONS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def config_with_corpus(corpus: dict):
    """The default config (resolved, as a run directory keeps it) with ``data.corpus`` replaced."""
    container = OmegaConf.to_container(composed(), resolve=True)
    container["data"]["corpus"] = corpus
    return OmegaConf.create(container)


def run_dir_with_corpus(tmp_path: Path, corpus: dict) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    OmegaConf.save(config_with_corpus(corpus), run_dir / "config.yaml")
    return run_dir


class Reached(Exception):
    """Raised by the stand-in of instantiate: the check let the config through."""


@pytest.fixture
def calls(monkeypatch):
    """Every call of instantiate (in run_context) and of os.system, recorded; instantiate then stops
    the evaluation (nothing is built), os.system does nothing."""
    seen: list = []

    def fake_instantiate(node, *args, **kwargs):
        seen.append(("instantiate", OmegaConf.to_container(node)))
        raise Reached

    monkeypatch.setattr(run_context, "instantiate", fake_instantiate)
    monkeypatch.setattr(os, "system", lambda command: seen.append(("os.system", command)) or 0)
    monkeypatch.delenv(ALLOWED_TARGETS_ENV, raising=False)
    return seen


SYNTHETIC = {"_target_": "shiftlab.data.SyntheticCorpus", "seed": 0, "n_pretrain": 10, "n_train": 10,
             "n_val": 5, "n_test": 5}

REFUSED = {
    "os.system": ({"_target_": "os.system", "command": "touch pwned"}, "data.corpus._target_", "os.system"),
    "builtins.eval": ({"_target_": "builtins.eval", "_args_": ["__import__('os').system('touch pwned')"]},
                      "data.corpus._target_", "builtins.eval"),
    "partial": ({"_target_": "os.system", "_partial_": True}, "data.corpus._target_", "os.system"),
    "nested": ({**SYNTHETIC, "seed": {"_target_": "os.system", "command": "touch pwned"}},
               "data.corpus.seed._target_", "os.system"),
    "deeper": ({**SYNTHETIC, "extra": {"a": [1, {"b": {"_target_": "builtins.exec", "_args_": ["1"]}}]}},
               "data.corpus.extra.a[1].b._target_", "builtins.exec"),
    "in _args_": ({"_target_": "shiftlab.data.SyntheticCorpus", "_args_": [{"_target_": "builtins.eval", "_args_": ["1"]}]},
                  "data.corpus._args_[0]._target_", "builtins.eval"),
    "look-alike prefix": ({"_target_": "shiftlab_evil.Corpus"}, "data.corpus._target_", "shiftlab_evil.Corpus"),
    "through a re-export": ({"_target_": "shiftlab.utils.io.os.system", "command": "touch pwned"},
                            "data.corpus._target_", "shiftlab.utils.io.os.system"),
    "a foreign class re-exported": ({"_target_": "shiftlab.utils.io.Path", "_args_": ["x"]},
                                    "data.corpus._target_", "shiftlab.utils.io.Path"),
    "dunder": ({"_target_": "shiftlab.data.SyntheticCorpus.__class__", "_args_": ["X", [], {}]},
               "data.corpus._target_", "shiftlab.data.SyntheticCorpus.__class__"),
    "not a string": ({"_target_": ["os.system"]}, "data.corpus._target_", "['os.system']"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_eval_refuses_a_foreign_target_before_building_anything(case, calls, tmp_path):
    corpus, key_path, target = REFUSED[case]
    run_dir = run_dir_with_corpus(tmp_path, corpus)
    with pytest.raises(UntrustedTargetError) as refused:
        evaluate_run(run_dir)
    message = str(refused.value)
    assert f"{key_path} is " in message and target in message, message
    assert ALLOWED_TARGETS_ENV in message
    assert calls == []  # neither instantiate nor os.system was called
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_an_interpolated_target_is_checked_as_it_resolves(calls, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_TEST_SNEAKY_TARGET", "os.system")
    run_dir = run_dir_with_corpus(tmp_path, {"_target_": "${oc.env:SHIFTLAB_TEST_SNEAKY_TARGET}", "command": "x"})
    with pytest.raises(UntrustedTargetError, match=r"data\.corpus\._target_ is 'os\.system'"):
        evaluate_run(run_dir)
    assert calls == []


def test_shiftlab_eval_prints_the_refusal(calls, tmp_path, capsys):
    run_dir = run_dir_with_corpus(tmp_path, {"_target_": "os.system", "command": "touch pwned"})
    assert main([str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("shiftlab-eval: data.corpus._target_ is 'os.system'")
    assert f"{ALLOWED_TARGETS_ENV}=os." in err
    assert calls == []


def test_a_shiftlab_corpus_passes(calls, tmp_path):
    with pytest.raises(Reached):
        evaluate_run(run_dir_with_corpus(tmp_path, SYNTHETIC))
    assert calls == [("instantiate", SYNTHETIC)]


@pytest.mark.parametrize("option", DATA_OPTIONS)
def test_every_shipped_data_config_passes(option, monkeypatch):
    monkeypatch.delenv(ALLOWED_TARGETS_ENV, raising=False)
    check_corpus_targets(composed(f"data={option}"))


def test_allowed_targets_from_the_environment(calls, tmp_path, monkeypatch):
    cfg = config_with_corpus({"_target_": "mypkg.Corpus", "size": 3})
    with pytest.raises(UntrustedTargetError, match=r"data\.corpus\._target_ is 'mypkg\.Corpus'"):
        check_corpus_targets(cfg)
    monkeypatch.setenv(ALLOWED_TARGETS_ENV, "otherpkg.corpora., mypkg.")
    check_corpus_targets(cfg)  # mypkg is not installed: the check does not need it, instantiate would say so
    with pytest.raises(Reached):
        evaluate_run(run_dir_with_corpus(tmp_path, {"_target_": "mypkg.Corpus", "size": 3}))
    assert calls == [("instantiate", {"_target_": "mypkg.Corpus", "size": 3})]
    for other in ("mypkgx.Corpus", "otherpkg.Corpus", "os.system"):  # prefixes match whole dotted names
        with pytest.raises(UntrustedTargetError, match="now: otherpkg.corpora., mypkg."):
            check_corpus_targets(config_with_corpus({"_target_": other}))
    check_corpus_targets(config_with_corpus({"_target_": "otherpkg.corpora.Corpus"}))


def test_training_trusts_its_own_config(calls, tmp_path):
    """The pipeline's build (trusted, the default) instantiates what its user's command line names."""
    cfg = config_with_corpus({"_target_": "mypkg.Corpus"})
    with pytest.raises(Reached):
        RunContext.build(cfg, tmp_path)
    with pytest.raises(UntrustedTargetError):
        RunContext.build(cfg, tmp_path, trusted=False)
    assert calls == [("instantiate", {"_target_": "mypkg.Corpus"})]
