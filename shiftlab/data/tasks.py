"""Which downstream tasks a run fine-tunes: the ``task`` group against what the corpus offers."""

from __future__ import annotations

from omegaconf import OmegaConf

from .corpus import Corpus


def resolve_tasks(tasks_cfg, corpus: Corpus) -> dict[str, dict]:
    """``task.tasks``: ``auto`` (the corpus's default tasks) or a mapping task -> arguments of
    its family (module and data settings). A name the corpus does not have fails here, before
    any training."""
    available = corpus.tasks()
    if tasks_cfg == "auto":
        return {name: {} for name in corpus.default_tasks()}
    tasks = OmegaConf.to_container(tasks_cfg, resolve=True) if not isinstance(tasks_cfg, dict) else dict(tasks_cfg)
    unknown = [name for name in tasks if name not in available]
    if unknown:
        raise ValueError(
            f"task config names {', '.join(unknown)}, which this corpus does not have; its tasks: "
            f"{', '.join(available) or 'none'} (or task=auto)"
        )
    return {name: dict(params or {}) for name, params in tasks.items()}
