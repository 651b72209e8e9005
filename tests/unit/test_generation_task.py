"""The generation task family: pairs -> teacher-forced seq2seq training -> generated text scored
with sacreBLEU, on an encoder-decoder backbone, through every fine-tuning mode that applies."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from shiftlab.data import Framing, build_word_tokenizer
from shiftlab.data.generation import GenerationDataModule
from shiftlab.data.real_corpora import ParallelCorpus
from shiftlab.families import families
from shiftlab.models import BackboneSpec, build_backbone
from shiftlab.models.finetune_modes import apply_finetune_mode
from shiftlab.pipeline import run
from shiftlab.tasks.generation import Seq2SeqModule

CONF = Path(__file__).resolve().parents[2] / "conf"
TATOEBA = Path(__file__).resolve().parents[3] / "shared" / "data" / "tatoeba-cmn-eng" / "cmn.txt"

# A toy "translation": English words to made-up Chinese characters, one character per word,
# with the order kept: learnable in a few hundred steps by a tiny model.
LEXICON = dict(zip("the a cat dog sees likes big small red blue".split(), "这一猫狗看喜大小红蓝"))


def toy_pairs(n: int, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    words = list(LEXICON)
    lines = []
    for _ in range(n):
        length = int(torch.randint(3, 7, (1,), generator=g))
        sentence = [words[int(i)] for i in torch.randint(len(words), (length,), generator=g)]
        lines.append(" ".join(sentence) + "\t" + "".join(LEXICON[w] for w in sentence) + "\tattribution\n")
    return lines


@pytest.fixture
def toy_file(tmp_path) -> Path:
    path = tmp_path / "toy.tsv"
    path.write_text("\ufeff" + "".join(toy_pairs(600)), encoding="utf-8")
    return path


def toy_setup(toy_file, *, batch_size=32):
    corpus = ParallelCorpus(toy_file, holdout_fraction=0.1, tokenize="punct", target_tokenize="chars", target_lang="zh")
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    data = GenerationDataModule(corpus, "translation", tokenizer, Framing.for_backbone("encoder_decoder", tokenizer),
                                seed=0, batch_size=batch_size, max_length=16)
    data.setup()
    return corpus, tokenizer, data


def tiny_bart(tokenizer, **config):
    sizes = dict(d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                 encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64, dropout=0.0, attention_dropout=0.0)
    sizes.update(config)
    return build_backbone(BackboneSpec(name="tiny_bart", kind="encoder_decoder", model_type="bart", config=sizes),
                          tokenizer, with_lm_head=True)


def module_for(backbone, tokenizer, data, **kwargs):
    return Seq2SeqModule(backbone, pad_id=tokenizer.pad_token_id, eos_id=data.eos_id, decode_text=data.decode,
                         texts=lambda split: (data.sources(split), data.references(split)), target_lang="zh", **kwargs)


def test_pairs_become_framed_sources_and_eos_terminated_labels(toy_file):
    corpus, tokenizer, data = toy_setup(toy_file)
    batch = next(iter(data.test_dataloader()))
    assert batch["input_ids"][:, 0].eq(tokenizer.cls_token_id).all()
    for row, index in zip(batch["labels"], batch["index"].tolist()):
        ids = row[row != -100].tolist()
        assert ids[-1] == tokenizer.eos_token_id
        # Decoding the labels gives back the untokenised reference, character for character.
        assert data.decode(ids) == data.references("test")[index]
    assert data.sources("test")[0] == corpus.sentence_pairs("test")[0][0]
    assert batch["attention_mask"].sum() == (batch["input_ids"] != tokenizer.pad_token_id).sum()


def test_decode_stops_at_the_first_end_token_and_drops_specials(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    ids = tokenizer.convert_tokens_to_ids(["猫", "[PAD]", "狗", "[EOS]", "大"])
    assert data.decode(ids) == "猫狗"


def test_teacher_forced_loss_equals_transformers_own(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    backbone = tiny_bart(tokenizer)
    backbone.eval()
    module = module_for(backbone, tokenizer, data)
    batch = next(iter(data.train_dataloader()))
    logits = module(batch["input_ids"], batch["attention_mask"], batch["labels"])
    ours = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    theirs = backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours, theirs)


def test_training_learns_the_toy_translation_and_beats_the_copy_baseline(toy_file, tmp_path):
    from shiftlab.metrics.generation import copy_source_baseline

    L.seed_everything(0, verbose=False)
    _, tokenizer, data = toy_setup(toy_file)
    module = module_for(tiny_bart(tokenizer), tokenizer, data, optim={"lr": 3e-3, "warmup_ratio": 0.0},
                        decoding={"strategy": "beam", "num_beams": 2, "max_new_tokens": 10},
                        val_decoding={"max_new_tokens": 10}, val_generate_limit=16)
    trainer = L.Trainer(max_epochs=12, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=data)
    assert "val/bleu" in trainer.callback_metrics
    result = trainer.test(module, datamodule=data, verbose=False)[0]
    baseline = copy_source_baseline(data.sources("test"), data.references("test"), target_lang="zh")
    assert result["test/bleu"] > 60 > baseline.scores["bleu"] + 50
    assert module.test_report.n == len(data.references("test"))
    assert "tok:zh" in module.test_report.to_text()


def test_lora_generation_runs_through_the_adapters(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    backbone = tiny_bart(tokenizer)
    batch = next(iter(data.test_dataloader()))
    plain = module_for(backbone, tokenizer, data).eval().generate_ids(batch["input_ids"], batch["attention_mask"])
    adapted = apply_finetune_mode(backbone, "lora", lm_head=True, **families()["generation"].finetune_params("lora", {"r": 4}))
    module = module_for(adapted, tokenizer, data).eval()
    # LoRA's B starts at zero: the adapted model generates exactly what the plain one did...
    torch.testing.assert_close(module.generate_ids(batch["input_ids"], batch["attention_mask"]), plain)
    names = [n for n, p in adapted.model.named_parameters() if p.requires_grad]
    assert any(".decoder." in n for n in names) and any(".encoder." in n for n in names)
    # ... and once the adapters move, generation follows them.
    with torch.no_grad():
        for name, parameter in adapted.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 2.0)
    assert not torch.equal(module.generate_ids(batch["input_ids"], batch["attention_mask"]), plain)


def test_adapter_generation_runs_through_encoder_and_decoder_adapters(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    backbone = tiny_bart(tokenizer)
    batch = next(iter(data.test_dataloader()))
    plain = module_for(backbone, tokenizer, data).eval().generate_ids(batch["input_ids"], batch["attention_mask"])
    adapted = apply_finetune_mode(backbone, "adapter", lm_head=True, **families()["generation"].finetune_params("adapter", {}))
    module = module_for(adapted, tokenizer, data).eval()
    # the up-projections start at zero: the adapted model generates exactly what the plain one did...
    torch.testing.assert_close(module.generate_ids(batch["input_ids"], batch["attention_mask"]), plain)
    sites = list(adapted.adapters.keys())
    assert any("decoder-" in k for k in sites) and any("encoder-" in k for k in sites)
    # ... and once the decoder's adapters move, generation (the model's own generate) follows them.
    with torch.no_grad():
        for key, adapter in adapted.adapters.items():
            if "decoder-" in key:  # both: a random BART's projections give tiny outputs for `down` to read
                adapter.down.weight.normal_(0, 2.0)
                adapter.up.weight.normal_(0, 2.0)
    assert not torch.equal(module.generate_ids(batch["input_ids"], batch["attention_mask"]), plain)


def test_prefix_generation_reads_the_encoder_prefix(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    # A large init spread, so that an untrained model's output depends on its input at all.
    backbone = apply_finetune_mode(tiny_bart(tokenizer, init_std=1.0), "prefix", lm_head=True,
                                   **families()["generation"].finetune_params("prefix", {}))
    module = module_for(backbone, tokenizer, data).eval()
    batch = next(iter(data.test_dataloader()))
    before = module.generate_ids(batch["input_ids"], batch["attention_mask"], {"strategy": "greedy"})
    assert len({tuple(row) for row in before.tolist()}) > 1
    with torch.no_grad():
        for parameter in backbone.prefix.parameters():
            parameter.normal_(0, 3.0)
    assert not torch.equal(module.generate_ids(batch["input_ids"], batch["attention_mask"], {"strategy": "greedy"}), before)


def test_seq2seq_sampling_is_reproducible_from_its_seed(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    torch.manual_seed(0)
    module = module_for(tiny_bart(tokenizer, init_std=0.5), tokenizer, data).eval()
    batch = next(iter(data.test_dataloader()))

    def sample(seed):
        return module.generate_ids(batch["input_ids"], batch["attention_mask"],
                                   {"strategy": "sample", "seed": seed, "max_new_tokens": 8})

    state = torch.random.get_rng_state()
    assert torch.equal(sample(1), sample(1)) and not torch.equal(sample(1), sample(2))
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left as it was


def test_frozen_mode_and_bad_decoding_are_refused_with_the_key(toy_file):
    _, tokenizer, data = toy_setup(toy_file)
    with pytest.raises(ValueError, match="finetune=frozen.*generation task has none"):
        families()["generation"].check(data.corpus, "translation", mode="frozen", trainer_cfg={})
    with pytest.raises(ValueError, match="decoding.strategy must be one of greedy, beam, sample"):
        module_for(tiny_bart(tokenizer), tokenizer, data, decoding={"strategy": "nucleus"})
    with pytest.raises(ValueError, match="val_decoding: unknown key.*beams"):
        module_for(tiny_bart(tokenizer), tokenizer, data, val_decoding={"beams": 2})
    encoder = build_backbone(BackboneSpec(name="tiny_bert", kind="encoder", model_type="bert",
                                          config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                  "intermediate_size": 64}), tokenizer, with_lm_head=True)
    with pytest.raises(ValueError, match="encoder_decoder backbone.*tiny_bert"):
        module_for(encoder, tokenizer, data)


def test_pipeline_writes_the_generation_report_and_the_copy_baseline(toy_file, tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=tatoeba_bart", f"data.corpus.train={toy_file}", "data.corpus.holdout_fraction=0.1",
            "backbone.config.d_model=32", "backbone.config.encoder_layers=1", "backbone.config.decoder_layers=1",
            "pretrain.max_steps=3", "pretrain.val_check_interval=3", "finetune.max_epochs=1", "finetune.max_steps=3",
            "finetune=lora", "task.tasks.translation.decoding.max_new_tokens=8", "logger=none",
            "trainer.enable_progress_bar=false", "task.tasks.translation.metrics=[bleu,chrf,rouge]",
        ])
    run_dir = tmp_path / "run"  # a directory of its own: tmp_path holds the data file
    metrics = run(cfg, run_dir)
    for key in ("translation/test/bleu", "translation/test/chrf", "translation/test/copy_source_bleu",
                "translation/test/rouge1", "translation/test/rougeL", "translation/test/copy_source_rouge2",
                "translation/test/loss", "translation/trainable_params", "pretrain/val/loss"):
        assert key in metrics, key
    reports = run_dir / "translation" / "reports"
    saved = json.loads((reports / "generation.json").read_text(encoding="utf-8"))
    assert saved["decoding"]["num_beams"] == 4 and "tok:zh" in saved["signatures"]["bleu"]
    assert (reports / "generation.txt").read_text(encoding="utf-8").count("hypothesis:") == 8
    assert (reports / "copy_source_baseline.json").exists()
    assert (run_dir / "translation" / "adapter" / "adapter_config.json").exists()


@pytest.mark.skipif(not TATOEBA.exists(), reason=f"needs the real Tatoeba file {TATOEBA}")
def test_tatoeba_config_reads_the_real_pairs():
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=tatoeba_bart"])
    corpus = instantiate(cfg.data.corpus)
    sizes = [len(corpus.pairs(split)) for split in ("train", "val", "test")]
    assert sum(sizes) == 29155 and 1200 < sizes[2] < 1700
    source, target = corpus.pairs("train")[0]
    assert target == list(corpus.sentence_pairs("train")[0][1].replace(" ", ""))
    assert corpus.detokenize(target) == corpus.sentence_pairs("train")[0][1].replace(" ", "")
    assert not any(word.endswith((".", "!", "?")) and len(word) > 1 for word in source)


@pytest.mark.parametrize("mode", ["lora", "full", "prefix", "adapter"])
def test_a_translation_run_evaluates_again_from_its_exports(mode, toy_file, tmp_path):
    from shiftlab.evaluate import evaluate_run

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=tatoeba_bart", f"data.corpus.train={toy_file}", "data.corpus.holdout_fraction=0.1",
            "backbone.config.d_model=32", "backbone.config.encoder_layers=1", "backbone.config.decoder_layers=1",
            "pretrain.max_steps=3", "pretrain.val_check_interval=3", "finetune.max_epochs=1", "finetune.max_steps=5",
            f"finetune={mode}", "task.tasks.translation.decoding.max_new_tokens=8", "logger=none",
            "callbacks=none", "trainer.enable_progress_bar=false",
        ])
    run_dir = tmp_path / "run"  # a directory of its own: tmp_path holds the data file
    first = run(cfg, run_dir)
    again = evaluate_run(run_dir)
    for key in ("translation/test/bleu", "translation/test/chrf", "translation/test/loss"):
        assert again[key] == pytest.approx(first[key], abs=1e-6), key
    assert (run_dir / "translation" / "eval_test" / "generation.json").exists()
