"""Which downstream tasks a run fine-tunes: the ``task`` group against what the corpus offers."""

from __future__ import annotations

from omegaconf import OmegaConf

from .corpus import Corpus


def resolve_tasks(tasks_cfg, corpus: Corpus) -> dict[str, dict]:
    """``task.tasks``: ``auto`` (the corpus's default tasks) or a mapping task -> arguments of
    its family (module and data settings). A name the corpus does not have fails here, before
    any training. A corpus's own ``task_settings(task)`` (e.g. ROUGE and the lead baseline for
    headlines) come first; the task config's keys override them."""
    available = corpus.tasks()
    if tasks_cfg == "auto":
        return {name: _corpus_settings(corpus, name) for name in corpus.default_tasks()}
    tasks = OmegaConf.to_container(tasks_cfg, resolve=True) if not isinstance(tasks_cfg, dict) else dict(tasks_cfg)
    unknown = [name for name in tasks if name not in available]
    if unknown:
        raise ValueError(
            f"task config names {', '.join(unknown)}, which this corpus does not have; its tasks: "
            f"{', '.join(available) or 'none'} (or task=auto)"
        )
    return {name: {**_corpus_settings(corpus, name), **dict(params or {})} for name, params in tasks.items()}


def _corpus_settings(corpus: Corpus, task: str) -> dict:
    settings = getattr(corpus, "task_settings", None)
    return dict(settings(task)) if settings is not None else {}
