"""The learning-rate schedules are transformers' (``get_scheduler``), with transformers' warm-up:
a stage configured like a ``Trainer`` run (``lr_scheduler_type``, ``warmup_steps=<ratio>``,
``lr_scheduler_kwargs``) follows the same learning rate at every step."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments, get_scheduler

from shiftlab.config_schema import SCHEDULES as CONFIG_SCHEDULES
from shiftlab.tasks.optim import SCHEDULES, OptimConfig, configure_adamw

KWARGS = {"cosine_with_restarts": {"num_cycles": 2}, "polynomial": {"power": 2.0, "lr_end": 1e-5},
          "inverse_sqrt": {"timescale": 5}, "cosine_with_min_lr": {"min_lr_rate": 0.1}}


def learning_rates(scheduler, optimizer, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("total,ratio", [(50, 0.06), (7, 0.1), (100, 0.0)])
def test_every_schedule_follows_transformers_step_for_step(schedule, total, ratio, tmp_path):
    config = OptimConfig(lr=3e-4, warmup_ratio=ratio, schedule=schedule, schedule_kwargs=KWARGS.get(schedule, {}))
    module = torch.nn.Linear(4, 3)
    ours = configure_adamw(module, config, total)
    got = learning_rates(ours["lr_scheduler"]["scheduler"], ours["optimizer"], total)

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4, warmup_steps=ratio, lr_scheduler_type=schedule,
                             lr_scheduler_kwargs=KWARGS.get(schedule, {}), report_to=[])
    warmup = args.get_warmup_steps(total)
    assert config.warmup_steps(total) == warmup
    reference = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=3e-4)
    expected = learning_rates(get_scheduler(schedule, reference, num_warmup_steps=warmup, num_training_steps=total,
                                            scheduler_specific_kwargs=KWARGS.get(schedule) or None), reference, total)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_linear_warms_up_from_zero_and_decays_to_zero():
    config = OptimConfig(lr=1.0, warmup_ratio=0.1, schedule="linear")
    ours = configure_adamw(torch.nn.Linear(2, 2), config, 20)
    rates = learning_rates(ours["lr_scheduler"]["scheduler"], ours["optimizer"], 20)
    assert rates[:3] == pytest.approx([0.0, 0.5, 1.0]) and rates[-1] == pytest.approx(1 / 18)


def test_the_config_accepts_exactly_the_schedules_the_code_has():
    assert CONFIG_SCHEDULES == SCHEDULES
    with pytest.raises(ValueError, match="optim.schedule must be one of linear, cosine"):
        OptimConfig(schedule="cosine_annealing")
