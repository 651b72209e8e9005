"""DivergenceGuard: a loss that becomes NaN or infinite fails the stage, with a message that says
where (stage, step), what came before (the last finite loss) and with which learning rate; a run
that diverged leaves failure.json, never metrics.json."""

from __future__ import annotations

import json
import math
import pickle
import re
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from shiftlab.tasks.divergence import DivergenceGuard, TrainingDiverged


class Tiny(L.LightningModule):
    """A linear regression; ``bad_step``: its loss at that optimiser step (1-based) is ``bad``;
    ``bad_val``: its validation loss is ``bad_val``."""

    def __init__(self, lr: float = 0.01, bad_step: int | None = None, bad: float = math.nan,
                 bad_val: float | None = None, with_dict: bool = False):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.lr, self.bad_step, self.bad, self.bad_val, self.with_dict = lr, bad_step, bad, bad_val, with_dict

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        if self.bad_step is not None and self.trainer.global_step + 1 == self.bad_step:
            loss = loss * self.bad
        return {"loss": loss} if self.with_dict else loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        if self.bad_val is not None:
            loss = loss * self.bad_val
        self.log("val/loss", loss)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", torch.nn.functional.mse_loss(self.layer(x), y) * math.nan)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def loader(n: int = 64) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=4)


def trainer(guard: DivergenceGuard, tmp_path, **kwargs) -> L.Trainer:
    options = dict(max_steps=10, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    options.update(kwargs)
    return L.Trainer(callbacks=[guard], **options)


@pytest.mark.parametrize("bad,shown", [(math.nan, "nan"), (math.inf, "inf")])
@pytest.mark.parametrize("with_dict", [False, True])
def test_a_non_finite_training_loss_stops_the_stage_with_where_and_why(bad, shown, with_dict, tmp_path):
    guard = DivergenceGuard(stage="pretrain")
    with pytest.raises(TrainingDiverged) as caught:
        trainer(guard, tmp_path).fit(Tiny(lr=0.01, bad_step=6, bad=bad, with_dict=with_dict), loader())
    error = caught.value
    message = str(error)
    assert message.startswith(f"pretrain diverged at step 6: the training loss is {shown} (last finite loss ")
    assert " at step 5; learning rate 0.01); lower pretrain.optim.lr or check the data" in message
    assert error.stage == "pretrain" and error.step == 6 and error.learning_rates == (0.01,)
    assert error.last_finite is not None and error.last_finite[0] == 5 and math.isfinite(error.last_finite[1])
    assert isinstance(error, RuntimeError)
    assert str(pickle.loads(pickle.dumps(error))) == message  # it can cross processes


def test_a_huge_learning_rate_diverges_and_is_named(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"^order diverged at step \d+: the training loss is (nan|inf) "
                       r"\(last finite loss \S+ at step \d+; learning rate 1e\+30\); lower finetune.optim.lr"):
        trainer(DivergenceGuard(stage="order"), tmp_path, max_steps=50).fit(Tiny(lr=1e30), loader(256))


def test_finite_losses_pass(tmp_path):
    guard = DivergenceGuard(stage="pretrain")
    fit = trainer(guard, tmp_path, limit_val_batches=2, val_check_interval=5, num_sanity_val_steps=2)
    fit.fit(Tiny(), loader(), loader(16))
    fit.validate(Tiny(), loader(16), verbose=False)
    assert fit.global_step == 10 and guard._last_finite[0] == 10


def test_checking_every_few_batches_still_reports_the_first_bad_step(tmp_path):
    guard = DivergenceGuard(stage="pretrain", every=4)
    fit = trainer(guard, tmp_path, max_steps=20)
    with pytest.raises(TrainingDiverged, match=r"at step 6: .* at step 5;") as caught:
        fit.fit(Tiny(bad_step=6), loader())
    assert fit.global_step == 8  # found at the check after batch 8, reported as step 6
    assert caught.value.step == 6


def test_losses_pending_at_the_end_of_training_are_checked(tmp_path):
    guard = DivergenceGuard(stage="pretrain", every=100)
    with pytest.raises(TrainingDiverged, match="at step 10: the training loss is nan"):
        trainer(guard, tmp_path).fit(Tiny(bad_step=10), loader())


def test_a_non_finite_validation_loss_stops_the_stage(tmp_path):
    guard = DivergenceGuard(stage="order")
    fit = trainer(guard, tmp_path, limit_val_batches=2, val_check_interval=5, num_sanity_val_steps=0)
    with pytest.raises(TrainingDiverged, match=r"^order diverged at step 5: the validation loss val/loss is nan "
                       r"\(last finite loss \S+ at step 5; learning rate 0.01\); lower finetune.optim.lr"):
        fit.fit(Tiny(bad_val=math.nan), loader(), loader(16))


def test_the_sanity_check_is_left_to_the_first_validation(tmp_path):
    fit = trainer(DivergenceGuard(stage="order"), tmp_path, limit_val_batches=2, val_check_interval=5,
                  num_sanity_val_steps=2)
    with pytest.raises(TrainingDiverged, match="at step 5: the validation loss val/loss is inf"):
        fit.fit(Tiny(bad_val=math.inf), loader(), loader(16))


def test_a_non_finite_test_loss_stops_the_stage(tmp_path):
    fit = trainer(DivergenceGuard(stage="order"), tmp_path, max_steps=2)
    fit.fit(Tiny(), loader())
    with pytest.raises(TrainingDiverged, match=r"at step 2: the test loss test/loss is nan \(last finite loss "):
        fit.test(Tiny(), loader(8), verbose=False)


def test_every_must_be_positive():
    with pytest.raises(ValueError, match="every"):
        DivergenceGuard(stage="pretrain", every=0)


# ------------------------------------------------------------------------------------ pipeline


def test_a_diverged_run_fails_and_leaves_failure_json_not_metrics(tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    from shiftlab.pipeline import run

    conf = Path(__file__).resolve().parents[2] / "conf"
    overrides = ["data.corpus.n_pretrain=200", "data.corpus.n_train=80", "data.corpus.n_val=20",
                 "data.corpus.n_test=30", "pretrain.max_steps=6", "pretrain.val_check_interval=6",
                 "pretrain.batch_size=8", "finetune.max_epochs=1", "finetune.max_steps=3",
                 "trainer.enable_progress_bar=false", "logger=none", "task=order", "pretrain.optim.lr=1e6"]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.backbone.config["hidden_size"] = 32
    with pytest.raises(TrainingDiverged) as caught:
        run(cfg, tmp_path)
    message = str(caught.value)
    print(f"\nend-to-end failure message: {message}", file=sys.stderr)
    assert message.startswith(f"pretrain diverged at step {caught.value.step}: ")
    # warmup: the rate of the step that diverged is on its way to pretrain.optim.lr=1e6
    assert re.search(r"\(last finite loss \S+ at step \d+; learning rate \S+\); lower pretrain.optim.lr or check "
                     r"the data$", message), message
    failure = json.loads((tmp_path / "failure.json").read_text())
    assert failure["stage"] == "pretrain" and failure["error"] == "TrainingDiverged"
    assert failure["message"] == message and f"at step {caught.value.step}" in failure["message"]
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["status"] == "failed" and info["stage"] == "pretrain"
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "order").exists()  # no task was fine-tuned from the broken backbone
