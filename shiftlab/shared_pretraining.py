"""Shift pretraining shared across runs: the same pretraining is done once and its export reused.

A sweep that varies only what happens after pretraining (the fine-tuning mode, its learning rate,
the task) would otherwise pretrain the same backbone once per job. Here a pretraining stage is
named by a hash of everything its result depends on:

- the resolved ``backbone``, ``shift``, ``objective`` and ``pretrain`` config groups and the ``seed``;
- the pretraining text, through the corpus cache key (:mod:`shiftlab.data.corpus_cache`: the data's
  fingerprint, the tokenizer, framing, ``max_length``, packing) and ``data.views`` / ``dynamic``;
- the trainer settings that change the numbers (accelerator, devices, precision, strategy,
  accumulation, clipping, compile...; not progress bars or logging intervals);
- the shiftlab source code and the torch / transformers / lightning versions.

The first run with a key pretrains as usual and publishes its export (``backbone/``, the stage's
metrics, where it came from) under ``$SHIFTLAB_CACHE/pretrained/<key>/``; every later run with the
key links (or copies) that export into its own ``pretrain/backbone/`` and goes straight to
fine-tuning. Jobs that start together wait for the first one (a file lock per key), so each key
is pretrained exactly once. ``pretrain.reuse=false`` pretrains again, always.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from omegaconf import OmegaConf

from shiftlab.utils.cache import content_key, entry_lock, publish, source_fingerprint
from shiftlab.utils.io import write_json_atomic

EXPORT = "backbone"
METRICS = "stage.json"
ORIGIN = "origin.json"
# Trainer keys that do not change what pretraining computes.
_COSMETIC_TRAINER_KEYS = {"log_every_n_steps", "enable_progress_bar", "enable_model_summary", "enable_checkpointing",
                          "num_sanity_val_steps", "limit_test_batches", "default_root_dir", "profiler",
                          "progress_refresh_rate"}
# Data keys that change how fast rows arrive, never which rows or how they are shifted.
_SPEED_DATA_KEYS = {"num_workers", "num_proc", "cache", "prefetch_factor", "pin_memory", "corpus", "tokenizer",
                    "max_length", "packing", "sentences_per_sample", "name"}


def pretraining_inputs(cfg, corpus_key: str) -> dict:
    """What a pretraining stage's result depends on (see the module docstring)."""
    import lightning
    import torch
    import transformers

    def plain(node):
        return OmegaConf.to_container(node, resolve=True) if node is not None else None

    trainer = {k: v for k, v in (plain(cfg.trainer) or {}).items() if k not in _COSMETIC_TRAINER_KEYS}
    data = {k: v for k, v in (plain(cfg.data) or {}).items() if k not in _SPEED_DATA_KEYS}
    pretrain = {k: v for k, v in (plain(cfg.pretrain) or {}).items() if k != "reuse"}
    return {
        "backbone": plain(cfg.backbone), "shift": plain(cfg.shift), "objective": plain(cfg.objective),
        "pretrain": pretrain, "seed": cfg.seed, "corpus": corpus_key, "data": data, "trainer": trainer,
        "code": source_fingerprint(*sorted(Path(__file__).resolve().parent.rglob("*.py"))),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "lightning": lightning.__version__},
    }


class SharedPretraining:
    """One key's entry under ``root``: :meth:`claim` it, then :meth:`find` a published export or
    pretrain and :meth:`publish` yours while still holding the claim."""

    def __init__(self, root: str | Path, inputs: dict):
        self.inputs = inputs
        self.key = content_key(inputs)
        self.entry = Path(root).expanduser() / self.key

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        with entry_lock(self.entry, f"shiftlab: pretrain: waiting for another job that is pretraining the same "
                                    f"configuration ({self.entry})"):
            yield

    def find(self) -> dict | None:
        """The published stage metrics and origin, or None."""
        if not (self.entry / METRICS).is_file():
            return None
        return {"metrics": json.loads((self.entry / METRICS).read_text(encoding="utf-8")),
                "origin": json.loads((self.entry / ORIGIN).read_text(encoding="utf-8"))}

    def restore(self, export_dir: Path) -> None:
        """The published export into ``export_dir`` (hard links where the file system allows)."""
        if export_dir.exists():
            shutil.rmtree(export_dir)
        _link_tree(self.entry / EXPORT, export_dir)

    def publish(self, export_dir: Path, metrics: dict, run_dir: Path) -> None:
        def fill(tmp: Path) -> None:
            _link_tree(export_dir, tmp / EXPORT)
            write_json_atomic(tmp / METRICS, metrics)
            write_json_atomic(tmp / ORIGIN, {"run_dir": str(Path(run_dir).resolve()), "key": self.key,
                                             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "inputs": self.inputs})
        publish(self.entry, fill)


def _link_tree(source: Path, target: Path) -> None:
    """Copy a directory tree, hard-linking files where possible (same file system): a reused
    export costs no disk, and deleting the run that made it deletes nothing of the cache."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)
