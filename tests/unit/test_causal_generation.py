"""Decoder-only generation (the ``causal_generation`` family): prompt + target in one sequence with
the loss on the target only, and generation with the key/value cache, through every fine-tuning
mode; checked against hand computations and against transformers' own ``generate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from shiftlab.data import Framing, build_word_tokenizer
from shiftlab.data.causal_generation import CausalGenerationDataModule, PromptTargetCollator
from shiftlab.data.real_corpora import ParallelCorpus
from shiftlab.families import families, family_for
from shiftlab.models import BackboneSpec, build_backbone
from shiftlab.models.decoding import decoding_settings
from shiftlab.models.finetune_modes import apply_finetune_mode
from shiftlab.pipeline import run
from shiftlab.tasks.generation import CausalLMModule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_generation_task import toy_pairs  # noqa: E402  (the toy English -> made-up Chinese pairs)

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture
def toy_file(tmp_path) -> Path:
    path = tmp_path / "toy.tsv"
    path.write_text("\ufeff" + "".join(toy_pairs(600)), encoding="utf-8")
    return path


def toy_setup(toy_file, *, batch_size=16):
    corpus = ParallelCorpus(toy_file, holdout_fraction=0.1, tokenize="punct", target_tokenize="chars", target_lang="zh")
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    data = CausalGenerationDataModule(corpus, "translation", tokenizer, Framing.for_backbone("decoder", tokenizer),
                                      seed=0, batch_size=batch_size, max_length=16)
    data.setup()
    return corpus, tokenizer, data


def tiny_gpt2(tokenizer, **config):
    sizes = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0)
    sizes.update(config)
    return build_backbone(BackboneSpec(name="tiny_gpt2", kind="decoder", model_type="gpt2", config=sizes), tokenizer,
                          with_lm_head=True)


def module_for(backbone, tokenizer, data, **kwargs):
    return CausalLMModule(backbone, pad_id=tokenizer.pad_token_id, eos_id=data.eos_id, decode_text=data.decode,
                          texts=lambda split: (data.sources(split), data.references(split)), target_lang="zh", **kwargs)


def until_eos(rows: torch.Tensor, eos: int) -> list[list[int]]:
    out = []
    for row in rows.tolist():
        out.append(row[: row.index(eos) + 1] if eos in row else row)
    return out


def test_rows_are_prompt_then_target_with_labels_on_the_target_only(toy_file):
    corpus, tokenizer, data = toy_setup(toy_file)
    batch = next(iter(data.test_dataloader()))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    for row in range(batch["input_ids"].shape[0]):
        length = int(batch["attention_mask"][row].sum())
        ids, labels = batch["input_ids"][row, :length], batch["labels"][row, :length]
        prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()]
        assert prompt[0] == bos and prompt[-1] == eos
        assert torch.equal(ids[: len(prompt)], prompt) and labels[: len(prompt)].eq(-100).all()
        target = labels[len(prompt):]
        assert torch.equal(target, ids[len(prompt):]) and target[-1] == eos
        index = int(batch["index"][row])
        assert data.decode(target.tolist()) == data.references("test")[index]
    # prompts are left-padded: every row ends on a real token, generation's starting point
    assert batch["prompt_mask"][:, -1].eq(1).all()


def test_masks_come_from_lengths_when_the_padding_token_is_the_end_token():
    # SmolLM2 pads with <|im_end|>, which also ends every row: a mask built from the padding id
    # would hide each row's real end token.
    eos = 7
    collate = PromptTargetCollator(pad_id=eos)
    batch = collate([{"sample_id": 0, "prompt": torch.tensor([1, 5, eos]), "target": torch.tensor([9, eos])},
                     {"sample_id": 1, "prompt": torch.tensor([1, eos]), "target": torch.tensor([eos])}])
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["prompt_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 9, eos], [-100, -100, eos, -100, -100]]


def test_the_loss_is_the_next_token_loss_on_the_target_computed_by_hand(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    backbone = tiny_gpt2(tokenizer).eval()
    module = module_for(backbone, tokenizer, data)
    batch = next(iter(data.train_dataloader()))
    loss, count = module._loss(batch)
    # by hand: the logits at position t score the token at t + 1, wherever that token is a target token
    logits = backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    terms = []
    for row in range(batch["input_ids"].shape[0]):
        for t in range(batch["input_ids"].shape[1] - 1):
            token = int(batch["labels"][row, t + 1])
            if token != -100:
                terms.append(-torch.log_softmax(logits[row, t], -1)[token])
    assert count == len(terms) == int((batch["labels"] != -100).sum())
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    # ... which is also transformers' own causal-LM loss on these labels
    theirs = backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    torch.testing.assert_close(loss, theirs)


@pytest.mark.parametrize("decoding", [
    {"strategy": "greedy", "max_new_tokens": 9},
    {"strategy": "beam", "num_beams": 3, "max_new_tokens": 9},
    {"strategy": "beam", "num_beams": 4, "max_new_tokens": 7, "length_penalty": 0.5},
])
def test_generation_equals_transformers_generate(toy_file, decoding):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    backbone = tiny_gpt2(tokenizer, initializer_range=0.3).eval()  # spread out: no end token at once
    module = module_for(backbone, tokenizer, data)
    batch = next(iter(data.test_dataloader()))
    ours = module.generate_ids(batch["prompt_ids"], batch["prompt_mask"], decoding)
    theirs = backbone.model.generate(input_ids=batch["prompt_ids"], attention_mask=batch["prompt_mask"],
                                     generation_config=module.generation_config(decoding))
    theirs = theirs[:, batch["prompt_ids"].shape[1]:]
    assert until_eos(ours, data.eos_id) == until_eos(theirs, data.eos_id)
    assert ours.shape[1] >= 3  # the comparison is not between empty continuations


def test_left_padding_does_not_change_what_a_prompt_generates(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    module = module_for(tiny_gpt2(tokenizer, initializer_range=0.3).eval(), tokenizer, data)
    batch = next(iter(data.test_dataloader()))
    greedy = {"strategy": "greedy", "max_new_tokens": 12}
    together = until_eos(module.generate_ids(batch["prompt_ids"], batch["prompt_mask"], greedy), data.eos_id)
    for row in range(batch["prompt_ids"].shape[0]):
        prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()][None]
        alone = module.generate_ids(prompt, torch.ones_like(prompt), greedy)
        assert until_eos(alone, data.eos_id)[0] == together[row]


def test_a_continuation_longer_than_the_positions_is_refused_with_the_keys(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    module = module_for(tiny_gpt2(tokenizer), tokenizer, data)
    batch = next(iter(data.test_dataloader()))
    with pytest.raises(ValueError, match="max_new_tokens=64 exceed backbone 'tiny_gpt2'.s 64 positions.*data.max_length"):
        module.generate_ids(batch["prompt_ids"], batch["prompt_mask"], {"strategy": "greedy", "max_new_tokens": 64})


def test_sampling_is_reproducible_from_its_seed(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    module = module_for(tiny_gpt2(tokenizer, initializer_range=0.3).eval(), tokenizer, data)
    batch = next(iter(data.test_dataloader()))

    def sample(**settings):
        return module.generate_ids(batch["prompt_ids"], batch["prompt_mask"],
                                   {"strategy": "sample", "max_new_tokens": 8, **settings})

    assert torch.equal(sample(seed=3), sample(seed=3))
    assert not torch.equal(sample(seed=3), sample(seed=4))
    # top_k=1 keeps only the most likely token: sampling becomes greedy decoding
    greedy = module.generate_ids(batch["prompt_ids"], batch["prompt_mask"], {"strategy": "greedy", "max_new_tokens": 8})
    assert until_eos(sample(seed=5, top_k=1), data.eos_id) == until_eos(greedy, data.eos_id)
    assert until_eos(sample(seed=5, top_p=1e-6), data.eos_id) == until_eos(greedy, data.eos_id)


def test_decoding_settings_name_the_key_and_what_fits():
    assert decoding_settings({"strategy": "sample", "temperature": 0.7}, "decoding", default_strategy="beam")["seed"] == 0
    with pytest.raises(ValueError, match="decoding.strategy must be one of greedy, beam, sample"):
        decoding_settings({"strategy": "nucleus"}, "decoding", default_strategy="beam")
    with pytest.raises(ValueError, match="val_decoding: temperature applies to strategy: sample, not greedy"):
        decoding_settings({"temperature": 0.7}, "val_decoding", default_strategy="greedy")
    with pytest.raises(ValueError, match="decoding.top_p must be in"):
        decoding_settings({"strategy": "sample", "top_p": 0}, "decoding", default_strategy="beam")


@pytest.mark.parametrize("mode", ["full", "lora", "adalora", "ia3", "prefix", "adapter"])
def test_every_mode_generates_what_its_training_forward_predicts(toy_file, mode):
    """The cached generation path and the training path compute the same model: each greedy token
    is the argmax of the teacher-forced logits on prompt + the tokens generated before it."""
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    family = families()["causal_generation"]
    params = {"total_step": 10} if mode == "adalora" else {}
    backbone = apply_finetune_mode(tiny_gpt2(tokenizer, initializer_range=0.3), mode, lm_head=True,
                                   **family.finetune_params(mode, params))
    with torch.no_grad():  # move every trainable parameter, so the mode changes what is generated
        for parameter in backbone.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.5)
    module = module_for(backbone, tokenizer, data).eval()
    batch = next(iter(data.test_dataloader()))
    generated = module.generate_ids(batch["prompt_ids"], batch["prompt_mask"], {"strategy": "greedy", "max_new_tokens": 6})
    checked = 0
    for row in range(generated.shape[0]):
        prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()]
        tokens = until_eos(generated[row:row + 1], data.eos_id)[0]
        sequence = torch.cat([prompt, torch.tensor(tokens[:-1], dtype=torch.long)])[None]
        with torch.no_grad():
            logits = module(sequence, torch.ones_like(sequence))[0, len(prompt) - 1:]
        assert logits.argmax(-1).tolist() == tokens
        checked += len(tokens)
    assert checked > generated.shape[0]
    # and training reaches the mode's parameters through the target-only loss
    module.train()
    loss, _ = module._loss(next(iter(data.train_dataloader())))
    loss.backward()
    trained = [p for p in module.parameters() if p.requires_grad]
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_training_learns_the_toy_translation_and_beats_the_copy_baseline(toy_file, tmp_path):
    from shiftlab.metrics.generation import copy_source_baseline

    L.seed_everything(0, verbose=False)
    _, tokenizer, data = toy_setup(toy_file, batch_size=32)
    module = module_for(tiny_gpt2(tokenizer, n_embd=64, n_inner=128), tokenizer, data,
                        optim={"lr": 3e-3, "warmup_ratio": 0.0},
                        decoding={"strategy": "beam", "num_beams": 2, "max_new_tokens": 10},
                        val_decoding={"max_new_tokens": 10}, val_generate_limit=16)
    trainer = L.Trainer(max_epochs=10, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=data)
    assert "val/bleu" in trainer.callback_metrics
    result = trainer.test(module, datamodule=data, verbose=False)[0]
    baseline = copy_source_baseline(data.sources("test"), data.references("test"), target_lang="zh")
    assert result["test/bleu"] > 60 > baseline.scores["bleu"] + 50
    assert module.test_report.n == len(data.references("test"))


def test_generation_picks_its_family_by_backbone_kind(toy_file):
    corpus, _, _ = toy_setup(toy_file)
    assert family_for(corpus, "translation", "decoder").name == "causal_generation"
    assert family_for(corpus, "translation", "encoder_decoder").name == "generation"
    with pytest.raises(ValueError, match="encoder-only backbone cannot"):
        family_for(corpus, "translation", "encoder")
    with pytest.raises(ValueError, match="finetune=frozen"):
        family_for(corpus, "translation", "decoder").check(corpus, "translation", mode="frozen", trainer_cfg={})


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "prefix"])
def test_a_decoder_translation_run_exports_and_evaluates_again(mode, toy_file, tmp_path, monkeypatch):
    """experiment=tatoeba_smollm2 on tiny_gpt2: metrics and reports, the standard export loads as
    AutoModelForCausalLM (LoRA: through PEFT) and generates what shiftlab generated, and
    shiftlab-eval re-evaluates the run to the same scores."""
    from shiftlab.evaluate import evaluate_run

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=tatoeba_smollm2", "backbone=tiny_gpt2", f"data.corpus.train={toy_file}",
            "data.corpus.holdout_fraction=0.1", "data.corpus.train_limit=null", "data.corpus.eval_limit=40",
            "backbone.config.n_embd=32", "pretrain.max_steps=3", "finetune.max_steps=6", f"finetune={mode}",
            "task.tasks.translation.decoding.max_new_tokens=8", "logger=none", "callbacks=none",
            "trainer.enable_progress_bar=false",
        ])
    run_dir = tmp_path / "run"
    first = run(cfg, run_dir)
    for key in ("translation/test/bleu", "translation/test/chrf", "translation/test/copy_source_bleu",
                "translation/test/loss", "pretrain/val/loss"):
        assert key in first, key
    reports = run_dir / "translation" / "reports"
    assert json.loads((reports / "generation.json").read_text(encoding="utf-8"))["decoding"]["num_beams"] == 4
    again = evaluate_run(run_dir)
    for key in ("translation/test/bleu", "translation/test/chrf", "translation/test/loss"):
        assert again[key] == pytest.approx(first[key], abs=1e-6), key
    model_dir = run_dir / "translation" / "model"
    if mode == "prefix":  # shiftlab's own prefix: no transformers class runs it, the card says so
        assert not (model_dir / "config.json").exists() and not (model_dir / "adapter_config.json").exists()
        return
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer, GenerationConfig

    monkeypatch.chdir(run_dir)  # the adapter names its base relative to the run, as its card says
    tokenizer = AutoTokenizer.from_pretrained("translation/model")
    model = AutoPeftModelForCausalLM.from_pretrained("translation/model", pad_token_id=tokenizer.pad_token_id).eval()
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert 'GenerationConfig.from_pretrained("translation/model")' in card  # PEFT loads the base's config
    model.generation_config = GenerationConfig.from_pretrained("translation/model")
    assert json.loads((model_dir / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    generated = (run_dir / "translation" / "reports" / "generation.txt").read_text(encoding="utf-8")
    source = shown = None
    for line in generated.splitlines():
        if line.strip().startswith("source:"):
            shown = line.split("source:", 1)[1].strip()
        if line.strip().startswith("hypothesis:") and shown is not None:
            source, expected = shown, line.split("hypothesis:", 1)[1].strip()
            break
    inputs = tokenizer(source, return_tensors="pt")  # the saved framing: [BOS] source [EOS], as in training
    output = model.generate(**inputs)[0, inputs["input_ids"].shape[1]:]
    words = tokenizer.convert_ids_to_tokens([i for i in output.tolist() if i not in tokenizer.all_special_ids])
    assert "".join(words) == expected


def write_articles(path: Path, n: int, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    words = "markets rally as rates fall government plans new tax on fuel team wins cup final".split()
    rows = []
    for i in range(n):
        title = [words[int(k)] for k in torch.randint(len(words), (4,), generator=g)]
        body = " ".join(title) + " today. " + " ".join(words[int(k)] for k in torch.randint(len(words), (12,), generator=g)) + "."
        rows.append(json.dumps({"id": f"x/{seed}-{i}", "category": "business" if i % 2 else "sport",
                                "title": " ".join(title).capitalize(), "body": body}) + "\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path


def test_a_decoder_headline_run_scores_rouge_against_the_lead_and_evaluates_again(tmp_path):
    """experiment=bbc_headline_smollm2 on tiny_gpt2 (small articles of the BBC layout): ROUGE and
    the lead baseline in metrics.json, and shiftlab-eval gives the same scores."""
    from shiftlab.evaluate import evaluate_run

    files = {split: write_articles(tmp_path / f"{split}.jsonl", n, seed)
             for split, n, seed in (("train", 48, 0), ("val", 12, 1), ("test", 12, 2))}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=bbc_headline_smollm2", "backbone=tiny_gpt2", f"data.corpus.train={files['train']}",
            f"data.corpus.val={files['val']}", f"data.corpus.test={files['test']}", "data.max_length=32",
            "backbone.config.n_embd=32", "pretrain.max_steps=2", "finetune.max_steps=4", "finetune=full",
            "task.tasks.headline.decoding.num_beams=2", "task.tasks.headline.decoding.max_new_tokens=6",
            "logger=none", "callbacks=none", "trainer.enable_progress_bar=false",
        ])
    run_dir = tmp_path / "run"
    first = run(cfg, run_dir)
    for key in ("headline/test/rouge1", "headline/test/rougeL", "headline/test/lead_rouge1", "headline/test/loss"):
        assert key in first, key
    assert first["headline/test/lead_rouge1"] > 50  # the bodies open with their headline's words
    assert json.loads((run_dir / "headline" / "model" / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    again = evaluate_run(run_dir)
    for key in ("headline/test/rouge1", "headline/test/rougeL", "headline/test/loss"):
        assert again[key] == pytest.approx(first[key], abs=1e-6), key
