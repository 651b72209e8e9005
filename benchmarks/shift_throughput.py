"""Throughput of every registered shift policy against Hugging Face's MLM collator.

    python benchmarks/shift_throughput.py [--batch 256 --seq 128 --repeats 7] [--quick] [--check]

Single-threaded (``torch.set_num_threads(1)``), on one pre-tokenised random batch (``[CLS]``
content ``[SEP]``, full rows, words of 1-3 sub-words, 1-4 sentences per row), it measures
tokens/s (batch tokens / median seconds per call, after a warm-up) of:

* every policy in ``POLICIES`` x every unit it supports (``token``, ``word``, ``ngram2``,
  ``sentence``), called as ``ShiftCollator`` calls it (keys, special mask, word/sentence ids);
* ``transformers.DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)``
  on the same batch, fed three ways (dicts of lists, dicts of tensors, dicts of tensors with a
  precomputed ``special_tokens_mask``); the fastest is the reference;
* the end-to-end collation rate of ``ShiftPretrainDataModule`` (synthetic corpus, ``token_move``)
  iterating its train loader with ``num_workers`` 0 and 2.

Targets: token-level policies >= 5x the MLM collator, word-level >= 1x. The exit code is 0 (a
measurement, not a test) unless ``--check`` is given and a target fails.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shiftlab.data import Framing, ShiftPretrainDataModule, SyntheticCorpus, build_word_tokenizer  # noqa: E402
from shiftlab.shifts import POLICIES, Vocab, build_policy  # noqa: E402

UNIT_FOR_KIND = {"token": "token", "char": "char", "word": "word", "ngram": "ngram2", "sentence": "sentence"}
TARGETS = {"token": 5.0, "word": 1.0}  # minimum ratio vs the MLM collator, by unit
# Policies that cannot be built from defaults alone: the parameters benchmarked (BART's preset).
REQUIRED_PARAMS = {"compose": {"steps": [{"name": "infill"}, {"name": "sentence_permute"}]}}


def build_tokenizer(size: int):
    return build_word_tokenizer([f"w{i}" for i in range(size)])


def make_batch(tokenizer, batch: int, seq: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Full rows: [CLS] seq-2 content tokens [SEP]; words of 1-3 sub-words; 1-4 sentences."""
    g = torch.Generator().manual_seed(seed)
    specials = set(tokenizer.all_special_ids)
    content_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in specials])
    n = seq - 2
    ids = content_ids[torch.randint(len(content_ids), (batch, seq), generator=g)]
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    special = torch.zeros(batch, seq, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    word_ids = torch.full((batch, seq), -1)
    sentence_ids = torch.full((batch, seq), -1)
    for b in range(batch):
        pieces = torch.randint(1, 4, (n,), generator=g)
        words = torch.repeat_interleave(torch.arange(n), pieces)[:n]
        n_words = int(words[-1]) + 1
        n_sentences = int(torch.randint(1, 5, (1,), generator=g))
        cuts = torch.randperm(max(n_words - 1, 1), generator=g)[: n_sentences - 1].add(1).sort().values
        word_ids[b, 1:-1] = words
        sentence_ids[b, 1:-1] = torch.searchsorted(cuts, words, right=True)
    return {"input_ids": ids, "special_mask": special, "word_ids": word_ids, "sentence_ids": sentence_ids,
            "sample_ids": torch.arange(batch)}


def measure(calls: dict[str, object], repeats: int, warmup: int = 2, min_seconds: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each callable.

    Each callable gets ``warmup`` calls, then a loop length that fills ``min_seconds``. The
    ``repeats`` rounds are interleaved (round r times every callable once), so the MLM collator
    and the policies share whatever load the machine has during the run, and their ratios hold
    up better than their absolute rates on a shared machine.
    """
    loops = {}
    for key, fn in calls.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        loops[key] = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-9)))
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            n = loops[key]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times[key].append((time.perf_counter() - start) / n)
    return {key: statistics.median(t) for key, t in times.items()}


def policy_cases(units: tuple[str, ...]) -> list[tuple[str, str | None]]:
    cases = []
    for name in sorted(POLICIES):
        cls = POLICIES[name]
        if "unit" in inspect.signature(cls.__init__).parameters:
            cases += [(name, UNIT_FOR_KIND.get(k, k)) for k in cls.SUPPORTED_UNITS if UNIT_FOR_KIND.get(k, k) in units]
        else:
            cases.append((name, None))
    return cases


def make_policy(name: str, unit: str | None, vocab: Vocab):
    params = dict(REQUIRED_PARAMS.get(name, {}))
    if unit is not None:
        params["unit"] = unit
    policy = build_policy(name, **params)
    if policy.NEEDS_VOCAB:
        policy.bind_vocab(vocab)
    return policy


def unit_label(policy) -> str:
    """The unit a policy moves; for a chain (``compose``), each step's ``name/unit``. A chain gets
    a target only if all its steps share one unit (then its label is that unit)."""
    steps = getattr(policy, "steps", None)
    if steps:
        units = {getattr(step, "unit", "token") for step in steps}
        if len(units) == 1:
            return units.pop()
        return " → ".join(f"{step.name}/{getattr(step, 'unit', 'token')}" for step in steps)
    return getattr(policy, "unit", "token")


def policy_calls(batch, vocab, units: tuple[str, ...]) -> tuple[dict, list[dict]]:
    """One callable per policy x unit (as ShiftCollator calls a policy), and the rows to report.
    A policy that cannot be built or called is a row with its error, never skipped."""
    calls, rows = {}, []
    for name, unit in policy_cases(units):
        row = {"policy": name, "unit": unit or "-", "seconds": None, "error": None}
        try:
            policy = make_policy(name, unit, vocab)
            row["unit"] = unit_label(policy)

            def call(policy=policy):
                policy(batch["input_ids"], special_mask=batch["special_mask"], sample_ids=batch["sample_ids"], seed=0,
                       epoch=0, view=0, word_ids=batch["word_ids"], sentence_ids=batch["sentence_ids"])

            call()
            calls[(name, row["unit"])] = call
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return calls, rows


def mlm_collator_calls(tokenizer, batch) -> dict:
    """``DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)`` on the same
    batch, fed three ways (the examples are built once, outside the timing)."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)
    ids = batch["input_ids"]
    special = batch["special_mask"].long()
    feeds = {
        "dicts of lists": [{"input_ids": row.tolist()} for row in ids],
        "dicts of tensors": [{"input_ids": row.clone()} for row in ids],
        "dicts of tensors + special_tokens_mask": [{"input_ids": row.clone(), "special_tokens_mask": s.clone()}
                                                   for row, s in zip(ids, special)],
    }
    return {("mlm", how): (lambda examples=examples: collator(examples)) for how, examples in feeds.items()}


def bench_datamodule(n_pretrain: int, batch_size: int, max_length: int,
                     workers: tuple[int, ...]) -> dict[int, tuple[float, float, float]]:
    """num_workers -> (real tokens/s, batches/s, real tokens per batch) over one epoch."""
    corpus = SyntheticCorpus(seed=0, n_pretrain=n_pretrain, n_train=8, n_val=8, n_test=8)
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    rates = {}
    for num_workers in workers:
        dm = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer),
                                     build_policy("token_move"), seed=0, batch_size=batch_size,
                                     num_workers=num_workers, max_length=max_length)
        dm.setup()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(0)
        for _ in loader:  # warm-up epoch: starts the (persistent) workers
            pass
        loader.sampler.set_epoch(1)
        tokens = 0
        start = time.perf_counter()
        for batch in loader:
            tokens += int(batch["attention_mask"].sum())
        seconds = time.perf_counter() - start
        rates[num_workers] = (tokens / seconds, len(loader) / seconds, tokens / len(loader))
        del loader, dm
    return rates


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "error"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    return f"{x / 1e3:.0f} k"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15, help="timed loops (>= 50 ms each) per measurement; the median is taken")
    parser.add_argument("--quick", action="store_true", help="3 repeats, token and word units, a small corpus")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--vocab", type=int, default=8000, help="word-level vocabulary size of the tokenizer")
    parser.add_argument("--corpus", type=int, default=8192, help="synthetic pretraining sentences for the data module")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    units = ("token", "word") if args.quick else ("token", "word", "ngram2", "sentence")
    corpus_size = 2048 if args.quick else args.corpus

    started = time.perf_counter()
    torch.set_num_threads(1)
    import transformers

    tokenizer = build_tokenizer(args.vocab)
    vocab = Vocab(size=len(tokenizer), pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                  special_ids=tuple(tokenizer.all_special_ids))
    batch = make_batch(tokenizer, args.batch, args.seq)
    print(f"# shift throughput: batch {args.batch} x {args.seq} = {batch['input_ids'].numel()} tokens, "
          f"torch threads 1, median of {repeats} timed loops (>= 50 ms each) after 2 warm-up calls")
    print(f"# {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    tokens = batch["input_ids"].numel()
    mlm_calls = mlm_collator_calls(tokenizer, batch)
    calls, rows = policy_calls(batch, vocab, units)
    seconds = measure({**mlm_calls, **calls}, repeats)
    mlm = {how: tokens / seconds[("mlm", how)] for _, how in mlm_calls}
    reference_how = max(mlm, key=mlm.get)
    reference = mlm[reference_how]
    for row in rows:
        key = (row["policy"], row["unit"])
        row["tokens_per_s"] = tokens / seconds[key] if key in seconds else None

    print()
    print("| policy | unit | tokens/s | × MLM collator | target | result |")
    print("|---|---|---:|---:|---:|---|")
    for how, rate in mlm.items():
        mark = " (reference)" if how == reference_how else ""
        print(f"| MLM collator, {how}{mark} | token | {fmt_rate(rate)} | {rate / reference:.2f} | | |")
    failed = []
    for row in rows:
        target = TARGETS.get(row["unit"])
        if row["tokens_per_s"] is None:
            ratio, result = "", "FAIL (error)"
            failed.append(row)
        else:
            ratio_value = row["tokens_per_s"] / reference
            ratio = f"{ratio_value:.2f}"
            result = "" if target is None else ("PASS" if ratio_value >= target else "FAIL")
            if result == "FAIL":
                failed.append(row)
        target_text = "" if target is None else f"≥ {target:g}×"
        print(f"| {row['policy']} | {row['unit']} | {fmt_rate(row['tokens_per_s'])} | {ratio} | {target_text} | {result} |")
    for row in rows:
        if row["error"]:
            print(f"\n{row['policy']} ({row['unit']}): {row['error']}")

    dm_rates = bench_datamodule(corpus_size, batch_size=args.batch, max_length=args.seq, workers=(0, 2))
    print()
    print(f"ShiftPretrainDataModule end to end (synthetic corpus, {corpus_size} sentences, token_move, "
          f"batch {args.batch}, max_length {args.seq}; real tokens/s over one epoch after a warm-up epoch):")
    print()
    print("| num_workers | tokens/s | batches/s | tokens per batch | × MLM collator |")
    print("|---:|---:|---:|---:|---:|")
    for workers, (rate, batches_per_s, per_batch) in dm_rates.items():
        print(f"| {workers} | {fmt_rate(rate)} | {batches_per_s:.1f} | {per_batch:.0f} | {rate / reference:.2f} |")

    print()
    print(f"# load average at the end {os.getloadavg()[0]:.2f}; {time.perf_counter() - started:.0f} s in all")
    print(f"{len(failed)} target(s) failed" + (": " + ", ".join(f"{r['policy']}/{r['unit']}" for r in failed) if failed else ""))
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
