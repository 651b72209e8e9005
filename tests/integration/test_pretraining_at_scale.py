"""Pretraining from text files through the whole pipeline: the corpus cache across runs, results
that do not depend on the cache or on packing's bookkeeping, pretraining shared across runs and
across jobs that start together, and the compiled path."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from shiftlab.data.tokenization import build_word_tokenizer
from shiftlab.pipeline import run

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
WORDS = "the a cat dog sat ran on under mat rug big small red blue quickly slowly and then home away".split()


def write_corpus(directory: Path, lines: int = 600, words_per_line: int | None = None) -> tuple[Path, Path]:
    """A .txt file and a .jsonl.gz file of sentences, and a word-level tokenizer directory."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = []
    for i in range(lines):
        n = words_per_line or 3 + i % 11
        texts.append(" ".join(WORDS[(i * 5 + 3 * k) % len(WORDS)] for k in range(n)))
    (directory / "a.txt").write_text("\n".join(texts[: lines // 2]) + "\n", encoding="utf-8")
    import gzip

    with gzip.open(directory / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": t}) + "\n" for t in texts[lines // 2 :])
    tokenizer_dir = directory / "tokenizer"
    build_word_tokenizer(WORDS).save_pretrained(str(tokenizer_dir))
    return directory, tokenizer_dir


def text_config(files, tokenizer_dir, *overrides):
    settings = [
        "data=text", f"data.corpus.files={files}", f"data.tokenizer={tokenizer_dir}", "data.corpus.val_fraction=0.1",
        "data.max_length=24", "task=none", "logger=none", "callbacks=none", "trainer.enable_progress_bar=false",
        "pretrain.max_steps=4", "pretrain.val_check_interval=4", "pretrain.batch_size=8",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=settings + list(overrides))
    cfg.backbone.config.hidden_size = 32
    return cfg


def logged(caplog) -> str:
    """What the run logged (the ``shiftlab`` logger) since the last call."""
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "shiftlab")
    caplog.clear()
    return text


def test_a_text_corpus_is_tokenised_once_and_an_identical_pretraining_is_reused(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="shiftlab")
    files, tokenizer = write_corpus(tmp_path / "data")
    first = run(text_config(files, tokenizer), tmp_path / "first")
    out = logged(caplog)
    assert "tokenising the pretraining corpus" in out and first["pretrain/reused"] == 0.0
    assert 0.0 <= first["pretrain/val/loss"] and (tmp_path / "first" / "pretrain" / "backbone" / "config.json").is_file()

    # Another pretraining on the same text: the cache serves it, nothing is tokenised.
    other = run(text_config(files, tokenizer, "pretrain.max_steps=6", "pretrain.val_check_interval=6"), tmp_path / "other")
    out = logged(caplog)
    assert "nothing to tokenise" in out and "tokenising" not in out and other["pretrain/reused"] == 0.0

    # The first configuration again: its pretraining is reused, not repeated.
    again = run(text_config(files, tokenizer), tmp_path / "again")
    out = logged(caplog)
    assert "reusing the identical pretraining" in out and again["pretrain/reused"] == 1.0
    assert {k: v for k, v in again.items() if k not in ("pretrain/reused", "pretrain/time_s")} == \
        {k: v for k, v in first.items() if k not in ("pretrain/reused", "pretrain/time_s")}
    exported = sorted(p.name for p in (tmp_path / "again" / "pretrain" / "backbone").iterdir())
    assert exported == sorted(p.name for p in (tmp_path / "first" / "pretrain" / "backbone").iterdir())
    for name in exported:
        assert (tmp_path / "again" / "pretrain" / "backbone" / name).read_bytes() == \
            (tmp_path / "first" / "pretrain" / "backbone" / name).read_bytes()

    # Switched off, it pretrains again, and gets the same numbers.
    fresh = run(text_config(files, tokenizer, "pretrain.reuse=false"), tmp_path / "fresh")
    assert "reusing" not in logged(caplog) and fresh["pretrain/val/loss"] == first["pretrain/val/loss"]


def test_results_do_not_depend_on_the_cache(tmp_path):
    files, tokenizer = write_corpus(tmp_path / "data")
    cached = run(text_config(files, tokenizer, "pretrain.reuse=false", "data.cache=true"), tmp_path / "cached")
    temporary = run(text_config(files, tokenizer, "pretrain.reuse=false", "data.cache=false"), tmp_path / "temporary")
    elsewhere = run(text_config(files, tokenizer, "pretrain.reuse=false", f"data.cache={tmp_path / 'mine'}"),
                    tmp_path / "elsewhere")
    assert (tmp_path / "mine" / "corpora").is_dir()
    strip = lambda m: {k: v for k, v in m.items() if not k.endswith("time_s")}  # noqa: E731
    assert strip(cached) == strip(temporary) == strip(elsewhere)


def test_packing_changes_nothing_where_every_document_fills_a_row(tmp_path):
    """Lines of exactly one row's worth of words: packed and unpacked rows are the same rows, so the
    word and sentence bookkeeping of packing must give the same training, step for step."""
    files, tokenizer = write_corpus(tmp_path / "data", words_per_line=22)
    results = {}
    for packing in (True, False):
        results[packing] = run(text_config(files, tokenizer, f"data.packing={packing}", "pretrain.reuse=false",
                                           "shift.params.unit=word"),
                               tmp_path / str(packing))
    strip = lambda m: {k: v for k, v in m.items() if not k.endswith("time_s")}  # noqa: E731
    assert strip(results[True]) == strip(results[False])


def test_a_datasets_source_pretrains(tmp_path):
    datasets = pytest.importorskip("datasets")
    _, tokenizer = write_corpus(tmp_path / "data")
    texts = [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(4 + i % 6)) + "." for i in range(300)]
    datasets.Dataset.from_dict({"sentence": texts}).save_to_disk(str(tmp_path / "saved"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=hf_text", f"data.corpus.dataset={tmp_path / 'saved'}", "data.corpus.text_field=sentence",
            "data.corpus.val_fraction=0.1", "data.corpus.split_sentences=true", f"data.tokenizer={tokenizer}",
            "data.max_length=32", "shift=sentence_permute", "objective=detect", "task=none", "logger=none",
            "callbacks=none", "trainer.enable_progress_bar=false", "pretrain.max_steps=3", "pretrain.val_check_interval=3",
            "pretrain.batch_size=8"])
    cfg.backbone.config.hidden_size = 32
    metrics = run(cfg, tmp_path / "run")
    assert metrics["pretrain/val/detect_acc"] > 0  # sentences moved inside packed rows


@pytest.mark.slow
def test_jobs_that_start_together_pretrain_once(tmp_path):
    """Two jobs that differ only in fine-tuning, started at the same moment: one pretrains, the
    other waits for it and reuses its export."""
    env = dict(os.environ, SHIFTLAB_CACHE=str(tmp_path / "cache"), WANDB_MODE="offline")
    common = ["data.corpus.n_pretrain=400", "data.corpus.n_train=60", "data.corpus.n_val=20", "data.corpus.n_test=20",
              "pretrain.max_steps=30", "pretrain.val_check_interval=30", "finetune.max_steps=2", "task=order",
              "logger=none", "callbacks=none", "trainer.enable_progress_bar=false"]
    jobs = [subprocess.Popen([sys.executable, "-m", "shiftlab.train", *common, f"finetune.optim.lr={lr}",
                              f"hydra.run.dir={tmp_path / f'job{i}'}"], env=env, cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for i, lr in enumerate((1e-3, 5e-4))]
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    assert all(job.returncode == 0 for job in jobs), "\n".join(o[-2000:] for o in outputs)
    reused = [json.loads((tmp_path / f"job{i}" / "metrics.json").read_text())["pretrain/reused"] for i in range(2)]
    assert sorted(reused) == [0.0, 1.0]
    assert sum("reusing the identical pretraining" in o for o in outputs) == 1


@pytest.mark.slow
def test_the_compiled_pipeline_runs_with_the_default_backend(tmp_path):
    """``trainer.compile=true``: torch.compile's default (inductor) backend, pretraining and all."""
    files, tokenizer = write_corpus(tmp_path / "data")
    metrics = run(text_config(files, tokenizer, "trainer.compile=true", "shift=mask", "objective=mlm",
                              "pretrain.reuse=false"), tmp_path / "run")
    assert metrics["pretrain/val/mlm_loss"] > 0 and metrics["pretrain/val/mlm_loss"] < 10


@pytest.mark.parametrize("mode", ["full", "lora", "prefix", "adapter"])
def test_every_finetune_mode_runs_compiled(mode, tmp_path):
    """``trainer.compile`` reaches fine-tuning too (``aot_eager``: torch.compile's graph capture and
    autograd tracing without generating code, to stay quick). One mode of each way of changing the
    model: the whole model (``frozen`` compiles the same graph with fewer gradients), a PEFT
    wrapper (``adalora`` and ``ia3`` are PEFT's same wrapping as ``lora``), the prefix cache, and
    the adapters' forward hooks. Every mode runs eagerly in test_pipeline."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data.corpus.n_pretrain=100", "data.corpus.n_train=40", "data.corpus.n_val=16", "data.corpus.n_test=16",
            "pretrain.max_steps=2", "pretrain.val_check_interval=2", "finetune.max_steps=3", "finetune.batch_size=8",
            "task=order", f"finetune={mode}", "logger=none", "callbacks=none", "trainer.enable_progress_bar=false"])
    cfg.backbone.config.hidden_size = 32
    cfg.trainer.compile = {"backend": "aot_eager"}
    metrics = run(cfg, tmp_path)
    assert 0.0 <= metrics["order/test/acc"] <= 1.0
