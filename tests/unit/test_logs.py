"""The ``shiftlab`` logger: readable console lines, a console of its own where nobody configured
logging (scripts, notebooks, ranks > 0), and only rank 0 reporting results."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from shiftlab.stages.run_log import config_summary, stage_files, stage_results
from shiftlab.utils.logs import ConsoleFormatter, ensure_console, log, results_from


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("shiftlab", level, __file__, 1, message, None, None)


def test_console_lines_read_as_the_printed_ones_did():
    formatter = ConsoleFormatter("%(message)s")
    assert formatter.format(record(logging.INFO, "metrics written to /r/metrics.json")) == \
        "shiftlab: metrics written to /r/metrics.json"
    assert formatter.format(record(logging.WARNING, "SLURM job 7 not requeued")) == \
        "shiftlab: warning: SLURM job 7 not requeued"


def test_unconfigured_logging_gets_a_console_and_configured_logging_is_left_alone(monkeypatch):
    level = log.level
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(logging.root, "handlers", [])  # as in a plain script: nobody configured logging
    stream = io.StringIO()
    try:
        ensure_console(stream)
        ensure_console(io.StringIO())  # once only
        assert len(log.handlers) == 1
        log.info("run directory %s", "/r")
        assert stream.getvalue() == "shiftlab: run directory /r\n"
    finally:
        log.setLevel(level)

    mine = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(logging.root, "handlers", [mine])  # Hydra's, pytest's, an application's
    ensure_console(stream)
    assert log.handlers == [] and log.level == level


def test_other_ranks_log_warnings_only(caplog):
    caplog.set_level(logging.INFO, logger="shiftlab")
    with results_from(rank_zero=False):
        log.info("order: test/acc 0.9")
        log.warning("something went wrong")
    with results_from(rank_zero=True):
        log.info("order: test/acc 0.9")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "something went wrong"), ("INFO", "order: test/acc 0.9")]


def test_the_config_summary_names_the_composed_choices_and_the_stage_settings():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[2] / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["finetune=lora", "seed=3"])
    summary = config_summary(cfg, {"task": "auto", "trainer": "cpu", "experiment": "quickstart", "hydra/launcher": "x"})
    first, *rest = summary.splitlines()
    assert first == ("config: backbone=tiny_bert data=synthetic shift=token_move objective=token_restore task=auto "
                     "finetune=lora trainer=cpu experiment=quickstart")
    assert rest[0].startswith("  seed=3 run_name=synthetic-tiny_bert-token_move-token_restore")
    assert rest[1].startswith("  pretrain: max_steps=") and rest[2].startswith("  finetune: mode=lora")
    assert config_summary(cfg).startswith("config: backbone=tiny_bert data=synthetic shift=token_move "
                                          "objective=token_restore finetune=lora\n")  # no Hydra: the names


def test_a_stage_logs_its_metrics_and_its_files(tmp_path):
    assert stage_results("order", {"test/acc": 0.123456, "time_s": 3.5, "trainable_params": 347010.0}) == \
        "order: test/acc 0.1235, time_s 3.5, trainable_params 347010"
    assert stage_files("order", tmp_path / "order") is None
    (tmp_path / "order" / "reports").mkdir(parents=True)
    (tmp_path / "order" / "metrics.csv").write_text("")
    assert stage_files("order", tmp_path / "order") == f"order: files in {tmp_path / 'order'}: metrics.csv, reports/"
