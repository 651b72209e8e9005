"""A run directory belongs to one run: a new run into it is refused, a second process is kept out,
a resumption must keep the run's config (but for settings that are safe to change), and a task's
labels are checked before any pretraining. Nothing already written is touched by a refusal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from shiftlab.pipeline import run
from shiftlab.stages.resume import RunDirectoryError, RunDirectoryLock
from shiftlab.utils.run_layout import RunLayout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_resume import CONF, config  # noqa: E402  (tiny settings)

FAST = ("pretrain.max_steps=2", "finetune.max_epochs=1", "finetune.max_steps=2")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    run(config(*FAST), run_dir)
    return run_dir


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()
            and p.name != ".lock"}


def test_a_new_run_into_a_used_directory_is_refused_and_touches_nothing(finished):
    before = snapshot(finished)
    with pytest.raises(RunDirectoryError, match=r"already holds a run .*ckpt_path=last.*another hydra.run.dir"):
        run(config(*FAST), finished)
    assert snapshot(finished) == before


def test_a_resume_that_changes_the_run_is_refused_naming_the_settings(finished):
    before = snapshot(finished)
    with pytest.raises(RunDirectoryError, match=r"resume refused.*pretrain.max_steps \(2 -> 3\); seed \(0 -> 1\)"):
        run(config("pretrain.max_steps=3", "finetune.max_epochs=1", "finetune.max_steps=2", "seed=1",
                   "ckpt_path=last"), finished)
    assert snapshot(finished) == before


def test_a_resume_may_change_what_is_safe_to_change(finished):
    metrics = run(config(*FAST, "ckpt_path=last", "data.num_workers=1", "trainer.enable_model_summary=false"),
                  finished)
    assert "order/test/acc" in metrics  # every stage had finished: skipped, the metrics read back


def test_resuming_a_directory_without_a_run_is_refused(tmp_path):
    with pytest.raises(RunDirectoryError, match="ckpt_path=last resumes the run in hydra.run.dir"):
        run(config(*FAST, "ckpt_path=last"), tmp_path / "nothing-here")


def test_a_second_process_is_kept_out_while_a_run_holds_the_directory(tmp_path):
    with RunDirectoryLock(RunLayout(tmp_path)):
        with pytest.raises(RunDirectoryError, match="in use by another shiftlab process"):
            run(config(*FAST), tmp_path)


def test_a_test_label_unseen_in_training_fails_before_any_pretraining(tmp_path):
    splits = {"train": "good\t1\nbad\t0\n" * 10, "val": "fine\t1\n", "test": "odd\t2\n"}
    for split, rows in splits.items():
        (tmp_path / f"{split}.tsv").write_text("sentence\tlabel\n" + rows)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*FAST, "data=sst2", "task=sst2", "data.tokenizer=word", "logger=none",
                                          *(f"data.corpus.{s}={tmp_path / f'{s}.tsv'}" for s in splits)])
    with pytest.raises(ValueError, match=r"label '2'.*test"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "pretrain").exists()


def test_a_run_made_before_the_common_trainer_keys_were_listed_still_resumes(finished):
    """Runs stored before conf/trainer_common existed lack those keys: at their (Lightning's
    default) values they are not a change."""
    from omegaconf import OmegaConf

    stored = OmegaConf.load(finished / "config.yaml")
    for key in ("limit_val_batches", "gradient_clip_val", "accumulate_grad_batches", "overfit_batches"):
        stored.trainer.pop(key)
    (finished / "config.yaml").write_text(OmegaConf.to_yaml(stored))
    assert "order/test/acc" in run(config(*FAST, "ckpt_path=last"), finished)
    with pytest.raises(RunDirectoryError, match=r"trainer.gradient_clip_val \(None -> 1.0\)"):
        run(config(*FAST, "ckpt_path=last", "trainer.gradient_clip_val=1.0"), finished)
