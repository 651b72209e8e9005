"""Objective × backbone × shift policy, checked from the config alone (shiftlab.compatibility):
every shipped combination passes, and a misfit is one line naming the keys and what would fit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from shiftlab.compatibility import check_components
from shiftlab.config_schema import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def experiment_compositions() -> list[list[str]]:
    runs = []
    for tier in sorted(CONF.glob("experiment/*/cpu.yaml")):
        study = tier.parent.name
        rows = sorted(p.stem for p in (tier.parent / "rows").glob("*.yaml")) if (tier.parent / "rows").is_dir() else []
        runs += [[f"experiment={study}/cpu", f"experiment/{study}/rows={row}"] for row in rows] or [[f"experiment={study}/cpu"]]
    runs += [[f"experiment={p.stem}"] for p in CONF.glob("experiment/*.yaml")]
    return runs


@pytest.mark.parametrize("overrides", experiment_compositions(), ids=lambda o: " ".join(o))
def test_every_shipped_experiment_fits_together(overrides):
    check_components(composed(*overrides))


@pytest.mark.parametrize("overrides,message", [
    (["backbone=tiny_gpt2", "objective=mlm"],
     r"objective=mlm with backbone=tiny_gpt2 .*needs an encoder or an encoder_decoder backbone.*objectives for a decoder: clm"),
    (["shift=token_move", "objective=mlm"], r"no targets under shift policy 'token_move'.*use one of: mask, infill"),
    (["shift=token_move", "objective=detect", "+objective.heads.detect.classes=3"],
     r"objective 'detect' has no targets under shift policy 'token_move' \(it needs a policy that puts new tokens in\)"),
    (["+objective.heads.token_restore.alpha=2"], r"objective 'token_restore' got unknown parameter\(s\) alpha"),
    (["+shift.params.speed=2"], r"shift=token_move: shift policy 'token_move' got unknown parameter\(s\) speed"),
    (["shift.params.rate=7"], r"shift=token_move: token_move: rate must be in \[0, 1\], got 7"),
])
def test_a_misfit_names_the_keys_and_what_fits(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_components(composed(*overrides))


def test_no_pretraining_has_nothing_to_fit():
    check_components(composed("backbone=tiny_gpt2", "objective=none", "shift=token_move"))


def test_shiftlab_train_refuses_a_misfit_in_one_line_before_any_run_directory(tmp_path):
    result = subprocess.run([sys.executable, "-m", "shiftlab.train", "backbone=tiny_gpt2", "objective=mlm"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "SHIFTLAB_OUTPUT": str(tmp_path / "out")})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "shiftlab-train: invalid config: objective=mlm with backbone=tiny_gpt2 and shift=token_move: objective 'mlm' "
        "needs an encoder or an encoder_decoder backbone, but 'tiny_gpt2' is a decoder; objectives for a decoder: "
        "clm, clm_shifted, deshuffle, causal_detect"]
    assert not (tmp_path / "out").exists()
