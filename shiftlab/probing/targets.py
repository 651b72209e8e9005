"""What a probe scores: a model that predicts labels, and the test split it was (or is to be)
scored on. Three sources, one :class:`ProbeTarget`:

* a **run directory**: each classification / tagging task's export (``<task>/adapter``) is loaded
  back exactly as ``shiftlab-eval`` loads it, with the data module fine-tuning built, so the
  identity condition reproduces the run's own test metrics;
* a **standard transformers export** of a run (``<run>/<task>/model``): the model as
  ``AutoModelFor<Task>`` / ``AutoPeftModelFor<Task>`` load it, the data of the run around it;
* **any transformers model directory** with a sequence- or token-classification head: the data
  comes from config overrides (``data=sst2``; the task with ``--task``), the tokenizer from the
  directory. Label names are matched through the model's ``id2label``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from shiftlab.utils.run_layout import RunLayout

PROBED_FAMILIES = ("classification", "tagging")


@dataclass
class ProbeTarget:
    task: str
    family: str  #: ``classification`` or ``tagging``
    label_names: list[str]
    loader: Iterable[dict]  #: the test batches (input_ids, attention_mask, word_ids, labels, sample_ids)
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  #: (input_ids, attention_mask) -> logits
    out_dir: Path  #: where probe.json and the tables go by default
    source_index: list[int] | None = None  #: windowed tagging rows -> their sentence (entity chunking)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    reference: dict[str, float] = field(default_factory=dict)  #: the run's own test metrics of this task
    source: dict[str, str] = field(default_factory=dict)  #: what was loaded, for probe.json
    max_batches: int | float | None = None  #: the run's trainer.limit_test_batches (its test pass scored only those)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def targets_for(path: str | Path, *, tasks: list[str] | None = None, overrides: list[str] = (),
                device: str = "auto") -> list[ProbeTarget]:
    """The targets of a run directory, a run's standard export, or a transformers model directory."""
    path = Path(path)
    if (path / "config.yaml").is_file():
        if overrides:
            raise ValueError(f"{path} is a run directory: its config says what data it was tested on, so config "
                             f"overrides ({' '.join(overrides)}) do not apply")
        return from_run(path, tasks=tasks, device=device)
    if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
        return [from_model_dir(path, task=_one(tasks, path), overrides=list(overrides), device=device)]
    raise FileNotFoundError(f"{path} is neither a shiftlab run directory (no config.yaml) nor a transformers model "
                            "directory (no config.json or adapter_config.json)")


def _one(tasks: list[str] | None, path: Path) -> str | None:
    if tasks and len(tasks) > 1:
        raise ValueError(f"{path} is one model: give at most one --task")
    return tasks[0] if tasks else None


def _run_config(run_dir: Path):
    from shiftlab.config_schema import checked

    return checked(OmegaConf.load(RunLayout(run_dir).config))


def _reference(layout: RunLayout, task: str) -> dict[str, float]:
    if not layout.metrics.is_file():
        return {}
    metrics = json.loads(layout.metrics.read_text())
    prefix = f"{task}/test/"
    return {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}


def _check_family(family, task: str) -> None:
    if family.name not in PROBED_FAMILIES:
        raise ValueError(f"task {task!r} is of family {family.name!r}: shiftlab-probe scores "
                         f"{' and '.join(PROBED_FAMILIES)} tasks")


def from_run(run_dir: Path, *, tasks: list[str] | None = None, device: str = "auto",
             require_metrics: bool = True) -> list[ProbeTarget]:
    """Every (or each named) classification / tagging task of a finished run, loaded from its
    export as ``shiftlab-eval`` loads it. A run without metrics.json did not finish (or is the one
    probing itself as its last stage: ``require_metrics=False``)."""
    from shiftlab.families import family_for
    from shiftlab.run_context import RunContext
    from shiftlab.stages.common import seed_stage
    from shiftlab.stages.finetuning import restore_task

    layout = RunLayout(run_dir)
    if require_metrics and not layout.metrics.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: the run did not finish (failed, killed or still "
                                "running), so its exports may not be its final models")
    cfg = _run_config(run_dir)
    seed_stage(cfg)
    ctx = RunContext.build(cfg, layout.root, trusted=False)  # a run directory may come from anyone
    chosen = tasks or [t for t in ctx.tasks if family_for(ctx.corpus, t, ctx.spec.kind).name in PROBED_FAMILIES]
    if not chosen:
        raise ValueError(f"{run_dir} has no classification or tagging task (its tasks: {', '.join(ctx.tasks)})")
    where = pick_device(device)
    targets = []
    for task in chosen:
        if task not in ctx.tasks:
            raise ValueError(f"{run_dir} did not fine-tune task {task!r}; its tasks: {', '.join(ctx.tasks)}")
        if not layout.adapter(task).exists():
            raise FileNotFoundError(f"{run_dir} has no export for task {task!r} (looked for {layout.adapter(task)})")
        base = ctx.finetuning_base(task)
        _check_family(family_for(ctx.corpus, task, base.kind), task)
        family, data, module = restore_task(cfg, task, ctx.tasks[task], ctx.corpus, ctx.tokenizer, ctx.framing, base,
                                            layout, "test")
        module.to(where).eval()
        targets.append(ProbeTarget(
            task=task, family=family.name, label_names=list(data.label_names), loader=data.test_dataloader(),
            predict=module, out_dir=layout.stage(task) / "probe", source_index=data.datasets["test"].encoded.source_index,
            device=where, reference=_reference(layout, task), source={"kind": "run", "path": str(layout.root)},
            max_batches=cfg.trainer.get("limit_test_batches"),
        ))
    return targets


def from_model_dir(model_dir: Path, *, task: str | None, overrides: list[str], device: str = "auto") -> ProbeTarget:
    """A transformers model directory with a classification or tagging head. Its data: the run
    around it (``<run>/<task>/model``) or ``overrides`` composed onto the default config."""
    from hydra.utils import instantiate

    from shiftlab.data import Framing
    from shiftlab.data.datamodules import TaskDataModule
    from shiftlab.data.tasks import resolve_tasks

    model_dir = Path(model_dir)
    run_dir = model_dir.parent.parent
    in_run = (run_dir / "config.yaml").is_file() and not overrides
    if in_run:
        cfg = _run_config(run_dir)
        task = task or model_dir.parent.name
    elif overrides:
        from shiftlab.config_schema import compose_checked

        cfg = compose_checked("train", overrides)
    else:
        raise ValueError(f"{model_dir} is not inside a run directory: say what data to probe it on with config "
                         "overrides, e.g. `shiftlab-probe MODEL_DIR data=sst2 --task sst2`")
    model, family = _load_hf_model(model_dir)
    from shiftlab.utils.trusted_targets import check_corpus_targets

    check_corpus_targets(cfg)
    corpus = instantiate(cfg.data.corpus)
    declared = corpus.tasks()
    if task is None:
        fitting = [name for name in resolve_tasks(cfg.task.tasks, corpus) if declared[name] == family]
        if len(fitting) != 1:
            raise ValueError(f"{model_dir}: say which task to probe with --task (the corpus's {family} tasks: "
                             f"{', '.join(n for n, f in declared.items() if f == family) or 'none'})")
        task = fitting[0]
    if task not in declared:
        raise ValueError(f"unknown task {task!r}; this corpus has: {', '.join(declared)}")
    if declared[task] != family:
        raise ValueError(f"{model_dir} has a {family} head, but task {task!r} is a {declared[task]} task")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    framing = Framing.for_backbone(_kind(model.config), tokenizer)
    data = TaskDataModule(corpus, task, tokenizer, framing, seed=int(cfg.seed), batch_size=int(cfg.finetune.batch_size),
                          max_length=int(cfg.data.max_length))
    data.setup()
    order = _label_order(model.config, data.label_names, model_dir)
    where = pick_device(device)
    model.to(where).eval()

    def predict(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[..., order]

    reference = _reference(RunLayout(run_dir), task) if in_run else {}
    return ProbeTarget(task=task, family=family, label_names=list(data.label_names), loader=data.test_dataloader(),
                       predict=predict, out_dir=model_dir / "probe", source_index=data.datasets["test"].encoded.source_index,
                       device=where, reference=reference, source={"kind": "transformers", "path": str(model_dir)},
                       max_batches=cfg.trainer.get("limit_test_batches") if in_run else None)


_HEADS = {"ForSequenceClassification": "classification", "ForTokenClassification": "tagging"}


def _load_hf_model(model_dir: Path):
    """The model and its family (by its architecture's class name, or the adapter's task type)."""
    adapter = model_dir / "adapter_config.json"
    if adapter.is_file():
        task_type = json.loads(adapter.read_text()).get("task_type")
        family = {"SEQ_CLS": "classification", "TOKEN_CLS": "tagging"}.get(task_type)
        if family is None:
            raise ValueError(f"{adapter}: task_type {task_type!r} has no classification or tagging head "
                             "(expected SEQ_CLS or TOKEN_CLS)")
        import peft

        auto = peft.AutoPeftModelForSequenceClassification if family == "classification" \
            else peft.AutoPeftModelForTokenClassification
        return auto.from_pretrained(str(model_dir)), family
    config = json.loads((model_dir / "config.json").read_text())
    for architecture in config.get("architectures") or []:
        for suffix, family in _HEADS.items():
            if architecture.endswith(suffix):
                import transformers

                auto = transformers.AutoModelForSequenceClassification if family == "classification" \
                    else transformers.AutoModelForTokenClassification
                return auto.from_pretrained(str(model_dir)), family
    raise ValueError(f"{model_dir / 'config.json'}: architectures {config.get('architectures')} has no "
                     "*ForSequenceClassification or *ForTokenClassification model: shiftlab-probe needs a "
                     "classification or tagging head")


def _kind(config) -> str:
    """encoder / decoder / encoder_decoder, for the framing tokens."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        return "encoder_decoder"
    return "encoder" if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "decoder"


def _label_order(config, label_names: list[str], model_dir: Path) -> list[int]:
    """For each of the corpus's labels, the model's output index (by ``id2label`` name)."""
    id2label = {int(i): name for i, name in (getattr(config, "id2label", None) or {}).items()}
    by_name = {name: i for i, name in id2label.items()}
    if set(label_names) <= set(by_name):
        return [by_name[name] for name in label_names]
    if len(id2label) == len(label_names) and all(name.startswith("LABEL_") for name in id2label.values()):
        return list(range(len(label_names)))  # unnamed labels: taken in the corpus's order
    raise ValueError(f"{model_dir / 'config.json'}: id2label ({', '.join(id2label.values())}) does not name the "
                     f"task's labels ({', '.join(label_names)})")
