"""Run a probe: every condition, ``draws`` keyed draws each, over a target's test split.

The test batches are built once (the data module's own test loader, so the rows, padding and
batch composition are the ones the run's test pass scored) and every condition perturbs copies of
them. The identity condition is one pass; the others are ``draws`` passes each, draw ``k`` keyed by
``(seed, sample id, k)``, so the result is a pure function of the model, the data and the seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from .grid import Condition
from .perturb import back_to_original, perturb
from .scoring import Pass, correct, pass_metrics, unchanged
from .targets import ProbeTarget

log = logging.getLogger("shiftlab")


@dataclass
class ConditionResult:
    condition: Condition
    draws: list[dict[str, float]]  #: per draw: the metrics, ``<metric>_drop`` from identity, acceptance
    right_only: float | None = None  #: classification: wrong unpermuted, right under at least one draw


@dataclass
class ProbeResult:
    target: ProbeTarget
    seed: int
    draws: int
    examples: int
    results: list[ConditionResult]
    skipped: list[str] = field(default_factory=list)

    @property
    def identity(self) -> dict[str, float]:
        return self.results[0].draws[0]


def run_probe(target: ProbeTarget, conditions: list[Condition], *, draws: int = 5, seed: int = 0,
              limit: int | None = None, progress: bool = True) -> ProbeResult:
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if not conditions or not conditions[0].is_identity:
        raise ValueError("the first probe condition must be identity (every drop is measured from it)")
    batches = _test_batches(target, limit)
    conditions, skipped = _drop_token_twins(conditions, batches)
    policies = [condition.build() for condition in conditions]
    total = len(batches) * (1 + draws * (len(conditions) - 1))
    bar = _progress_bar(total, f"probe {target.task}", progress)
    tagging = target.family == "tagging"
    original_labels = [batch["labels"] for batch in batches]

    def score(policy, draw: int) -> tuple[Pass, dict[str, float]]:
        result = _predict(target, policy, batches, seed=seed, draw=draw, bar=bar)
        return result, pass_metrics(result, num_classes=len(target.label_names), tagging=tagging,
                                    label_names=target.label_names, source_index=target.source_index)

    identity_pass, identity_metrics = score(policies[0], 0)
    identity_metrics.update({f"{name}_drop": 0.0 for name in _scored(identity_metrics)}, acceptance=1.0)
    results = [ConditionResult(conditions[0], [identity_metrics])]
    identity_right = None if tagging else correct(identity_pass)
    for condition, policy in zip(conditions[1:], policies[1:]):
        per_draw, rescued = [], torch.zeros_like(identity_right) if identity_right is not None else None
        for draw in range(draws):
            result, metrics = score(policy, draw)
            for name in _scored(metrics):
                metrics[f"{name}_drop"] = identity_metrics[name] - metrics[name]
            metrics["acceptance"] = float(unchanged(result, identity_pass, original_labels).float().mean())
            per_draw.append(metrics)
            if rescued is not None:
                rescued |= correct(result) & ~identity_right
        results.append(ConditionResult(condition, per_draw, None if rescued is None else float(rescued.float().mean())))
        log.info("probe %s: %s: %s", target.task, condition.name, _summary(per_draw))
    if results and identity_right is not None:
        results[0].right_only = 0.0
    bar.close()
    return ProbeResult(target, seed, draws, sum(len(b["labels"]) for b in batches), results, skipped)


def _predict(target: ProbeTarget, policy, batches: list[dict], *, seed: int, draw: int, bar) -> Pass:
    out = Pass([], [], [], [], [])
    with torch.no_grad():
        for batch in batches:
            moved = perturb(policy, batch, seed=seed, draw=draw)
            logits = target.predict(moved.input_ids.to(target.device), moved.attention_mask.to(target.device))
            predicted = logits.argmax(dim=-1).cpu()
            out.sample_ids.append(batch["sample_ids"])
            out.labels.append(moved.labels)
            out.predicted.append(predicted)
            out.in_original_order.append(back_to_original(predicted, moved.source_index) if predicted.dim() == 2
                                         else predicted)
            out.moved.append(moved.moved)
            bar.update(1)
    return out


def _test_batches(target: ProbeTarget, limit: int | None) -> list[dict]:
    """The test loader's batches: those the run's test pass scored (``trainer.limit_test_batches``,
    as Lightning counts it), and of them the first ``limit`` examples only, when given."""
    batches, seen = [], 0
    budget = _batch_budget(target.max_batches, len(target.loader))
    for batch in target.loader:
        if (limit is not None and seen >= limit) or len(batches) >= budget:
            break
        size = len(batch["sample_ids"])
        if limit is not None and seen + size > limit:
            keep = limit - seen
            batch = {key: value[:keep] for key, value in batch.items()}
            size = keep
        batches.append(batch)
        seen += size
    if not batches:
        raise ValueError(f"task {target.task!r}: the test split is empty")
    return batches


def _batch_budget(limit: int | float | None, available: int) -> int:
    if limit is None or (isinstance(limit, float) and limit >= 1.0):
        return available
    if isinstance(limit, float):
        return max(1, int(available * limit))
    return min(int(limit), available)


def _drop_token_twins(conditions: list[Condition], batches: list[dict]) -> tuple[list[Condition], list[str]]:
    """Where every word is a single token (a word-level tokenizer), a token-unit condition draws
    exactly the permutations of its word-unit twin: leave it out and say so."""
    multi_token = any(((b["word_ids"][:, 1:] == b["word_ids"][:, :-1]) & (b["word_ids"][:, 1:] >= 0)).any()
                      for b in batches)
    if multi_token:
        return conditions, []
    specs = {c.spec() for c in conditions}
    kept, skipped = [], []
    for condition in conditions:
        twin = Condition(condition.policy, condition.params, "word").spec()
        if condition.unit == "token" and not condition.is_identity and twin in specs:
            skipped.append(f"{condition.spec()}: every test word is one token, so it equals {twin}")
        else:
            kept.append(condition)
    return kept, skipped


def _scored(metrics: dict[str, float]) -> list[str]:
    """The task metrics of a pass (not the moved fraction, the acceptance or the drops)."""
    return [name for name in metrics if name not in ("moved", "acceptance") and not name.endswith("_drop")]


def _summary(per_draw: list[dict[str, float]]) -> str:
    keys = [k for k in ("acc", "entity_f1", "acceptance") if k in per_draw[0]]
    return ", ".join(f"{k} {sum(d[k] for d in per_draw) / len(per_draw):.4f}" for k in keys)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, description: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="batch", disable=None, dynamic_ncols=True)
