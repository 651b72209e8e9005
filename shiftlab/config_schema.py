"""The typed settings of a run: ``data``, ``pretrain``, ``finetune`` and the top-level keys.

Every default of these settings lives here, once: the dataclasses below are OmegaConf structured
configs, registered in Hydra's ConfigStore as ``shiftlab_schema`` (when :mod:`shiftlab` is
imported) and merged first by ``conf/train.yaml``'s defaults list, so

* ``shiftlab-train --cfg job`` shows every setting with its default;
* a ``conf/*.yaml`` file or a command-line override sets only what it changes;
* Hydra refuses, while composing, a misspelt key (``pretrain.max_stepz=3``) and a value of the
  wrong type (``seed=1.7``, ``pretrain.max_steps=abc``);
* :data:`RULES` adds what a type cannot say (allowed values, ranges).

The open parts stay open: ``data.corpus`` (a ``_target_`` mapping for ``hydra.utils.instantiate``),
``finetune.params`` (the fine-tuning mode's own arguments), ``backbone``, ``shift``... and any
other top-level key (a sweep's size table, ``+backbone.attn_implementation``...).

:func:`checked` validates a config and fills in the defaults it lacks (a hand-made config, or the
``config.yaml`` of a run made before a setting existed); :func:`compose_checked` is Hydra's
``compose`` + :func:`checked`, with Hydra's composition errors about these settings reworded by
:func:`explain`. Every error is a :class:`ConfigError` that names the full key, the valid keys
(and the closest one) or the expected type and the value given::

    unknown key pretrain.max_stepz (did you mean max_steps?); valid keys of pretrain: batch_size,
    batch_unit, max_steps, optim, reuse, val_check_interval
    seed must be an int, got 1.7 (float)

This module imports only OmegaConf and Hydra (``shiftlab-train`` checks the config before it loads
torch).
"""

import copy
import dataclasses
import difflib
import fnmatch
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from omegaconf import MISSING, DictConfig, OmegaConf, ValueNode, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

SCHEMA_NAME = "shiftlab_schema"  # the ConfigStore entry conf/train.yaml's defaults list starts with

# Mirrors of what the code accepts (tests/unit/test_config_schema.py keeps them in step):
# shiftlab.models.finetune_modes.FINETUNE_MODES and shiftlab.tasks.optim.OptimConfig's schedules.
FINETUNE_MODES = ("full", "frozen", "lora", "adalora", "prefix", "ia3", "adapter")
SCHEDULES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
             "inverse_sqrt", "cosine_with_min_lr")
BATCH_UNITS = ("samples", "sentences")
PROBE_GRIDS = ("full", "small")  # shiftlab.probing.grid.GRIDS


class ConfigError(ValueError):
    """A config that does not fit the schema; ``errors`` holds one message per problem."""

    def __init__(self, errors: Iterable[str]):
        self.errors = list(errors)
        if len(self.errors) == 1:
            text = f"invalid config: {self.errors[0]}"
        else:
            text = f"invalid config ({len(self.errors)} problems):\n" + "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(text)


# --------------------------------------------------------------------------------------- schema


@dataclass
class DataConfig:
    """``data``: the corpus and how its text becomes rows (a ``conf/data/*.yaml`` picks the corpus
    and sets what differs from these defaults)."""

    name: str = MISSING  # the data config's name (conf/data/<name>.yaml sets it)
    corpus: Any = MISSING  # the corpus: a mapping with a _target_ and its arguments, left open
    # auto: the pretrained backbone's tokenizer, else word; word: a word-level vocabulary built from
    # the corpus; char: one token per character; or a tokenizer directory (or hub name)
    tokenizer: str = "auto"
    max_length: int = 128  # tokens per row, framing included
    num_workers: int = 0  # data-loader workers; shifts are identical for any value
    # pretraining: fill rows of max_length with consecutive documents, cut between words
    packing: bool = False
    # pretraining text tokenised once into $SHIFTLAB_CACHE/corpora (true), into a temporary
    # directory per run (false), or into the directory given
    cache: Any = True
    num_proc: Optional[int] = None  # processes that tokenise the pretraining text (null: one per CPU core)
    prefetch_factor: Optional[int] = None  # batches each data-loader worker prepares ahead (null: torch's default)
    views: int = 1  # shifted views of each sample per batch
    dynamic: bool = True  # re-draw the shift every epoch (false: keep epoch 0's draw)
    sentences_per_sample: int = 1  # pack k sentences per pretraining sample (needed by unit=sentence policies)
    # Your own data (data=conll|tsv|parallel|datasets), named as transformers' run_ner.py /
    # run_glue.py / run_translation.py name them; those configs hand them to their corpus
    # (data.corpus.<key> says the same), other data configs refuse them.
    train_file: Any = None  # a file (parallel: or a [source, target] pair of files)
    validation_file: Any = None  # null: held out of train
    test_file: Any = None  # null: held out of train
    dataset_name: Optional[str] = None  # data=datasets: a Hub name or a local directory
    dataset_config_name: Optional[str] = None  # data=datasets: the dataset's configuration


@dataclass
class OptimSettings:
    """``<stage>.optim``: AdamW with a warm-up and a schedule (:class:`shiftlab.tasks.OptimConfig`)."""

    lr: float = 1e-3
    weight_decay: float = 0.01  # not applied to biases, norms, IA3 vectors and prefixes
    warmup_ratio: float = 0.06  # the fraction of the stage's steps spent warming up (rounded up, as transformers)
    # transformers' lr_scheduler_type names (transformers.get_scheduler): linear (warm-up, then linear
    # decay to 0), cosine, cosine_with_restarts, polynomial, constant (no warm-up), constant_with_warmup,
    # inverse_sqrt, cosine_with_min_lr; schedule_kwargs: their lr_scheduler_kwargs (num_cycles, power,
    # lr_end, timescale, min_lr_rate, ...)
    schedule: str = "linear"
    schedule_kwargs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PretrainConfig:
    """``pretrain``: stage 1, shift pretraining (skipped when objective=none)."""

    # Reuse an identical earlier pretraining (same backbone, data, policy, objective, steps, seed,
    # trainer and code) from $SHIFTLAB_CACHE/pretrained: a sweep over fine-tuning settings
    # pretrains each configuration once. false: always pretrain.
    reuse: bool = True
    max_steps: int = 600
    batch_size: int = 64
    # samples: batch_size counts samples; sentences: batch_size counts sentences (samples of
    # data.sentences_per_sample packed sentences: batch_size / k samples per batch)
    batch_unit: str = "samples"
    val_check_interval: Optional[int] = 200  # validate every this many steps (null: at the end only)
    optim: OptimSettings = field(default_factory=lambda: OptimSettings(lr=2e-3))


@dataclass
class FinetuneConfig:
    """``finetune``: stage 2, fine-tuning, once per task, each from the pretrained backbone. The
    mode comes from the ``finetune`` group (conf/finetune/<mode>.yaml sets ``name`` and ``params``):
    ``finetune=lora``."""

    name: str = "full"  # the mode: full, frozen, lora, adalora, prefix, ia3 or adapter
    params: Dict[str, Any] = field(default_factory=dict)  # the mode's own arguments (see conf/finetune/)
    max_epochs: int = 4
    max_steps: Optional[int] = None  # a cap on optimiser steps (null: max_epochs decides)
    batch_size: int = 32
    optim: OptimSettings = field(default_factory=lambda: OptimSettings(lr=1e-3, warmup_ratio=0.1))


@dataclass
class ExportConfig:
    """``export``: each fine-tuned task's standard transformers export (``<run>/<task>/model/``:
    AutoModelFor<Task> / AutoPeftModelFor<Task>, tokenizer, model card) and its upload to the Hugging
    Face Hub (docs/exports.md). shiftlab's own export (``<task>/adapter/``) is always written."""

    standard: bool = True  # write <task>/model/ (false: only shiftlab's own <task>/adapter/)
    push_to_hub: bool = False  # upload each task's <task>/model/ (huggingface_hub's credentials: HF_TOKEN)
    # The repository, <user or organisation>/<name>; {task} is replaced by the task's name (needed
    # when the run has several tasks).
    hub_model_id: Optional[str] = None
    hub_private: bool = True  # a new repository is private


@dataclass
class ProbeConfig:
    """``probe``: after its tasks, a run probes each classification / tagging task's model under
    word-order permutations, as ``shiftlab-probe`` does (docs/user_guide.md, word-order probes), so a
    sweep's probes need no second command; the means go to ``<run>/probe_metrics.json``."""

    enabled: bool = False  # probe the run's classification / tagging tasks after their tests
    grid: str = "small"  # the preset conditions (shiftlab.probing.grid.GRIDS)
    conditions: List[str] = field(default_factory=list)  # more conditions, policy[:key=value,...][@unit]
    draws: int = 3  # keyed draws per condition
    seed: int = 0  # the draws' seed (independent of the training seed)


@dataclass
class RunConfig:
    """The top-level keys of ``conf/train.yaml`` (the config's other top-level keys stay open)."""

    seed: int = 0  # the training seed (the synthetic corpus has its own: data.corpus.seed)
    # The W&B run's name (with -<finetune>-s<seed> added, which tells a sweep's jobs apart) and part
    # of an Optuna study's name.
    run_name: str = "${data.name}-${backbone.name}-${shift.name}-${objective.name}"
    run_group: Optional[str] = None  # set per sweep by shiftlab-train -m (the W&B group of its jobs)
    # Resume: ckpt_path=last with hydra.run.dir=<the run to resume> skips the stages that finished
    # and resumes the interrupted one from its <stage>/checkpoints/last.ckpt (model, optimiser,
    # scheduler, data position, RNG; exact on CPU). An explicit path resumes the first unfinished
    # stage from it.
    ckpt_path: Optional[str] = None
    optimize_metric: Optional[str] = None  # the metrics.json key a sweeper optimises (hparams_search sets it)


SECTIONS: Dict[str, type] = {"data": DataConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig,
                             "export": ExportConfig, "probe": ProbeConfig}
# What a required setting (no default) is, for the message when it is absent.
REQUIRED = {"data.name": "a string: the data config's name", "data.corpus": "a mapping with a _target_: the corpus"}


# ---------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """What a value must also be, beyond its type: ``text`` completes "<key> must be ..."."""

    text: str
    ok: Callable[[Any], bool]
    choices: tuple = ()  # for one_of: the closest choice is suggested


def one_of(*choices: str) -> Rule:
    return Rule("one of " + ", ".join(choices), lambda v: v in choices, choices)


POSITIVE = Rule("> 0", lambda v: v > 0)
NON_NEGATIVE = Rule(">= 0", lambda v: v >= 0)
FRACTION = Rule("in [0, 1]", lambda v: 0 <= v <= 1)
SEED = Rule("in [0, 4294967295] (numpy's seed range)", lambda v: 0 <= v <= 2**32 - 1)
CACHE = Rule("true, false or a directory", lambda v: isinstance(v, bool) or (isinstance(v, str) and v != ""))

# Key (fnmatch pattern) -> rule; a null value (an Optional field) is never checked.
RULES: Dict[str, Rule] = {
    "seed": SEED,
    "data.max_length": POSITIVE,
    "data.num_workers": NON_NEGATIVE,
    "data.cache": CACHE,
    "data.num_proc": NON_NEGATIVE,
    "data.prefetch_factor": POSITIVE,
    "data.views": POSITIVE,
    "data.sentences_per_sample": POSITIVE,
    "pretrain.max_steps": POSITIVE,
    "pretrain.batch_size": POSITIVE,
    "pretrain.batch_unit": one_of(*BATCH_UNITS),
    "pretrain.val_check_interval": POSITIVE,
    "finetune.name": one_of(*FINETUNE_MODES),
    "finetune.max_epochs": POSITIVE,
    "finetune.max_steps": POSITIVE,
    "finetune.batch_size": POSITIVE,
    "*.optim.lr": POSITIVE,
    "*.optim.weight_decay": NON_NEGATIVE,
    "*.optim.warmup_ratio": FRACTION,
    "*.optim.schedule": one_of(*SCHEDULES),
    "probe.grid": one_of(*PROBE_GRIDS),
    "probe.draws": POSITIVE,
    "probe.seed": SEED,
}


def rule_for(key: str) -> Optional[Rule]:
    for pattern, rule in RULES.items():
        if fnmatch.fnmatchcase(key, pattern):
            return rule
    return None


# ----------------------------------------------------------------------------- hydra wiring


def schema_node() -> DictConfig:
    """What ``shiftlab_schema`` holds: the typed sections, and the top-level keys as typed values in
    an open mapping (a structured config at the top would close it to every other key)."""
    top = OmegaConf.structured(RunConfig)
    content: Dict[str, Any] = {f.name: top._get_node(f.name) for f in dataclasses.fields(RunConfig)}
    content.update(SECTIONS)
    return OmegaConf.create(content)


def register() -> None:
    """Put ``shiftlab_schema`` in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=schema_node(), provider="shiftlab")


# --------------------------------------------------------------------------------- messages


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _describe(annotation: Any) -> str:
    """``int`` -> "an int", ``Optional[int]`` -> "an int or null"."""
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_describe(a) for a in args) + " or null"
    if annotation is Any:
        return "a value"
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    if typing.get_origin(annotation) in (dict, Dict) or annotation is dict:
        return "a mapping"
    if typing.get_origin(annotation) in (list, List) or annotation is list:
        return "a list"
    names = {int: "int", float: "number", bool: "boolean (true or false)", str: "string"}
    name = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return f"{_article(name)} {name}"


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _close(word: str, choices: Iterable[str]) -> Optional[str]:
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key_message(section: str, key: str, schema: type) -> str:
    keys = sorted(f.name for f in dataclasses.fields(schema))
    close = _close(key, keys)
    hint = f" (did you mean {close}?)" if close else ""
    return f"unknown key {section}.{key}{hint}; valid keys of {section}: {', '.join(keys)}"


def wrong_type_message(key: str, annotation: Any, value: Any) -> str:
    return f"{key} must be {_describe(annotation)}, got {_show(value)}"


def rule_message(key: str, rule: Rule, value: Any) -> str:
    close = _close(value, rule.choices) if rule.choices and isinstance(value, str) else None
    return f"{key} must be {rule.text}, got {value!r}" + (f" (did you mean {close}?)" if close else "")


@functools.lru_cache(maxsize=None)
def _hints(schema: type) -> Dict[str, Any]:
    return typing.get_type_hints(schema)


def _schema_at(path: str) -> Optional[type]:
    """The dataclass that describes the mapping at ``path`` ("pretrain.optim"), or None."""
    parts = path.split(".")
    schema = SECTIONS.get(parts[0])
    for part in parts[1:]:
        if schema is None:
            return None
        annotation = _hints(schema).get(part)
        schema = annotation if dataclasses.is_dataclass(annotation) else None
    return schema


# ---------------------------------------------------------------------------------- checking


def checked(cfg: Any) -> DictConfig:
    """``cfg`` validated against the schema, with the defaults it lacks filled in (a new config;
    ``cfg`` is not changed). ``data``/``pretrain``/``finetune`` come back typed; values that are
    interpolations stay interpolations (checked when they resolve here; skipped when they cannot,
    e.g. ``${hydra:...}`` outside a Hydra job). Raises :class:`ConfigError` listing every problem."""
    if not isinstance(cfg, DictConfig):
        if not isinstance(cfg, Mapping):
            raise ConfigError([f"a config must be a mapping, got {_show(cfg)}"])
        cfg = OmegaConf.create(dict(cfg))
    errors: list = []
    top_defaults = OmegaConf.structured(RunConfig)
    for name, annotation in _hints(RunConfig).items():
        if name in cfg:
            _check_leaf(cfg, name, name, annotation, top_defaults._get_node(name), errors)
    for section, schema in SECTIONS.items():
        node = cfg._get_node(section) if section in cfg else None
        if node is not None and node._is_missing():
            errors.append(f"{section} must be set (a mapping)")
            continue
        if node is not None and not (OmegaConf.is_dict(node) and not node._is_none()):
            errors.append(wrong_type_message(section, schema, node._value()))
            continue
        _check_mapping(cfg[section] if node is not None else None, section, schema, errors)
    errors.extend(_own_data_keys(cfg))
    if errors:
        raise ConfigError(errors)
    return _with_defaults(cfg)


OWN_DATA_KEYS = ("train_file", "validation_file", "test_file", "dataset_name", "dataset_config_name")


def _own_data_keys(cfg: DictConfig) -> list[str]:
    """``data.train_file`` (``data.dataset_name``) unset on a config whose corpus reads it, and
    ``data.train_file`` and its siblings set on a data config whose corpus does not read them
    (``data=wikiann data.train_file=x`` would otherwise train on WikiANN and ignore x)."""
    data = cfg._get_node("data") if "data" in cfg else None
    if data is None or not OmegaConf.is_dict(data) or data._is_none() or data._is_missing() or "corpus" not in data:
        return []
    corpus = data._get_node("corpus")
    if not OmegaConf.is_dict(corpus) or corpus._is_none() or corpus._is_missing():
        return []
    read = str(OmegaConf.to_container(corpus, resolve=False))
    errors = []
    for key in OWN_DATA_KEYS:
        node = data._get_node(key) if key in data else None
        unset = node is None or node._is_none() or node._is_missing()
        reads = f"data.{key}}}" in read or f"..{key}}}" in read
        if unset and reads and key in ("train_file", "dataset_name"):
            errors.append(f"data.{key} must be set: this data config reads its data from it "
                          f"(e.g. data.{key}={'train.tsv' if key == 'train_file' else 'glue'}); docs/your_own_data.md")
        elif not unset and not reads:
            target = corpus.get("_target_", "?")
            errors.append(f"data.{key} is read by data=conll, tsv, parallel and datasets; this data config's corpus "
                          f"({target}) does not read it: set its own data.corpus keys instead")
    return errors


def _check_mapping(node: Optional[DictConfig], path: str, schema: type, errors: list) -> None:
    hints = _hints(schema)
    defaults = OmegaConf.structured(schema)
    present = set(node.keys()) if node is not None and not node._is_missing() and not node._is_none() else set()
    for key in sorted(present - set(hints), key=str):
        errors.append(unknown_key_message(path, str(key), schema))
    for name, annotation in hints.items():
        key = f"{path}.{name}"
        if name not in present:
            if OmegaConf.is_missing(defaults, name):
                errors.append(f"{key} must be set ({REQUIRED.get(key) or _describe(annotation)})")
            continue
        if dataclasses.is_dataclass(annotation):
            child = node._get_node(name)
            if child._is_none() or not OmegaConf.is_dict(child):
                errors.append(wrong_type_message(key, annotation, child._value()))
            else:
                _check_mapping(node[name], key, annotation, errors)
            continue
        _check_leaf(node, name, key, annotation, defaults._get_node(name), errors)


def _check_leaf(parent: DictConfig, name: str, key: str, annotation: Any, template: Any, errors: list) -> None:
    if OmegaConf.is_missing(parent, name):
        errors.append(f"{key} must be set ({_describe(annotation)})")
        return
    try:
        value = parent[name]  # resolves an interpolation
    except Exception:  # unresolvable here (${hydra:...} outside a job, a key set later): not checked
        return
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        if typing.get_origin(annotation) in (dict, Dict) and isinstance(value, DictConfig):
            return
        if typing.get_origin(annotation) in (list, List) and OmegaConf.is_list(value):
            return  # its items are typed by OmegaConf when it composes
        if annotation is Any:
            return
        errors.append(wrong_type_message(key, annotation, OmegaConf.to_container(value, resolve=False)))
        return
    if typing.get_origin(annotation) in (dict, Dict):
        errors.append(wrong_type_message(key, annotation, value))
        return
    if isinstance(template, ValueNode):
        try:
            value = copy.deepcopy(template).validate_and_convert(value)
        except ValidationError:
            errors.append(wrong_type_message(key, annotation, value))
            return
    rule = rule_for(key)
    if rule is not None and value is not None and not rule.ok(value):
        errors.append(rule_message(key, rule, value))


def _with_defaults(cfg: DictConfig) -> DictConfig:
    result = copy.deepcopy(cfg)
    top = schema_node()
    with read_write(result), open_dict(result):
        for f in dataclasses.fields(RunConfig):
            node = top._get_node(f.name)
            if f.name in result:
                value = result._get_node(f.name)._value()  # an interpolation stays one
                node._set_value(value)
            result[f.name] = node
        for section, schema in SECTIONS.items():
            given = result[section] if section in result else None
            typed = OmegaConf.merge(OmegaConf.structured(schema), given) if given is not None else OmegaConf.structured(schema)
            result[section] = typed
    return result


# ------------------------------------------------------------------------- hydra composition


def explain(error: BaseException) -> Optional[ConfigError]:
    """Hydra's (or OmegaConf's) error about a schema key, as the :class:`ConfigError` that
    :func:`checked` would raise; None for any other error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OmegaConfBaseException) and getattr(error, "full_key", None):
            return _explain_omegaconf(error)
        error = error.__cause__ or error.__context__
    return None


def _explain_omegaconf(error: OmegaConfBaseException) -> Optional[ConfigError]:
    full_key = str(error.full_key)
    path, _, name = full_key.rpartition(".")
    if not path:  # a top-level key: only the typed ones are ours
        annotation = _hints(RunConfig).get(name)
        if annotation is not None and isinstance(error, ValidationError):
            return ConfigError([wrong_type_message(name, annotation, error.value)])
        return None
    schema = _schema_at(path)
    if schema is None:  # an open part (data.corpus, finetune.params) or not ours
        return None
    annotation = _hints(schema).get(name)
    if annotation is None and isinstance(error, (ConfigKeyError, ConfigAttributeError)):
        return ConfigError([unknown_key_message(path, name, schema)])
    if annotation is not None and isinstance(error, ValidationError):
        return ConfigError([wrong_type_message(full_key, annotation, error.value)])
    return None


def compose_checked(config_name: str = "train", overrides: Iterable[str] = (), **kwargs: Any) -> DictConfig:
    """``hydra.compose`` (inside ``initialize_config_dir``/``initialize``) then :func:`checked`;
    a composition error about a schema key becomes its :class:`ConfigError`."""
    from hydra import compose

    try:
        cfg = compose(config_name, overrides=list(overrides), **kwargs)
    except Exception as error:
        explained = explain(error)
        if explained is None:
            raise
        raise explained from error
    return checked(cfg)
