"""Decoding settings shared by the generation tasks, and batched generation for decoder-only backbones.

A task's ``decoding`` / ``val_decoding`` (:func:`decoding_settings`): ``strategy`` ``greedy``,
``beam`` (``num_beams``, ``length_penalty``) or ``sample`` (``temperature``, ``top_k``, ``top_p``
and a ``seed``, so that a sampled report is reproducible), and ``max_new_tokens``.

:func:`generate_causal` continues left-padded prompts with a decoder-only backbone, with a key/value
cache: the prompt is run once, then one token per step. Why our own loop rather than
transformers' ``generate``: it runs the backbone's own stack (``Backbone.base``, with whatever a
fine-tuning mode injected) and, for ``finetune=prefix``, starts from a cache pre-filled with the
trained prefix, with the real tokens keeping positions ``0..L-1`` as in training. transformers'
``generate`` numbers positions from the attention mask, so a prefix handed to it as a cache would
shift every position by its length. Without a prefix the loop gives what ``generate`` gives
(greedy and beam search with ``early_stopping=True`` are checked against it token for token in
the tests), so nothing is lost by owning it.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import DynamicCache

from .backbones import Backbone
from .prefix import PrefixBackbone, _cache_kwarg, prefix_cache

STRATEGIES = ("greedy", "beam", "sample")
_SAMPLING_KEYS = ("temperature", "top_k", "top_p", "seed")


def decoding_settings(spec: dict | None, key: str, *, default_strategy: str) -> dict[str, Any]:
    """A task's decoding settings, checked and completed with their defaults (``key`` names the
    config key in errors: ``decoding`` or ``val_decoding``)."""
    spec = dict(spec or {})
    strategy = spec.pop("strategy", default_strategy)
    if strategy not in STRATEGIES:
        raise ValueError(f"task {key}.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    num_beams = int(spec.pop("num_beams", 4 if strategy == "beam" else 1))
    if strategy != "beam" and num_beams != 1:
        raise ValueError(f"task {key}: strategy {strategy} takes num_beams 1, got {num_beams} (use strategy: beam)")
    if num_beams < 1:
        raise ValueError(f"task {key}.num_beams must be >= 1, got {num_beams}")
    resolved: dict[str, Any] = {"strategy": strategy, "num_beams": num_beams,
                                "max_new_tokens": int(spec.pop("max_new_tokens", 64)),
                                "length_penalty": float(spec.pop("length_penalty", 1.0))}
    sampling = {k: spec.pop(k) for k in _SAMPLING_KEYS if k in spec}
    if spec:
        raise ValueError(f"task {key}: unknown key(s) {', '.join(sorted(spec))}; known: strategy, num_beams, "
                         f"max_new_tokens, length_penalty, {', '.join(_SAMPLING_KEYS)} (the last four with strategy: sample)")
    if strategy != "sample":
        if sampling:
            raise ValueError(f"task {key}: {', '.join(sorted(sampling))} appl{'ies' if len(sampling) == 1 else 'y'} "
                             f"to strategy: sample, not {strategy}")
        return resolved
    resolved.update(temperature=float(sampling.get("temperature", 1.0)), top_k=int(sampling.get("top_k", 0)),
                    top_p=float(sampling.get("top_p", 1.0)), seed=int(sampling.get("seed", 0)))
    if resolved["temperature"] <= 0:
        raise ValueError(f"task {key}.temperature must be > 0, got {resolved['temperature']}")
    if not 0 < resolved["top_p"] <= 1:
        raise ValueError(f"task {key}.top_p must be in (0, 1], got {resolved['top_p']}")
    if resolved["top_k"] < 0:
        raise ValueError(f"task {key}.top_k must be >= 0 (0: no cut), got {resolved['top_k']}")
    return resolved


@torch.no_grad()
def generate_causal(backbone: Backbone, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, decoding: dict, *,
                    eos_id: int, pad_id: int) -> torch.Tensor:
    """Continue each left-padded prompt (``[B, L]``, mask 0 on the left padding) for up to
    ``decoding["max_new_tokens"]`` tokens; returns the new tokens ``[B, <= max_new_tokens]``, each
    row ending at its first ``eos_id`` and padded with ``pad_id`` after it."""
    if backbone.kind != "decoder":
        raise ValueError(f"generate_causal continues prompts with a decoder; {backbone.name!r} is {backbone.kind}")
    if bool((prompt_mask[:, -1] == 0).any()):
        raise ValueError("generate_causal needs left-padded prompts (every row's last position a real token)")
    longest = prompt_ids.shape[1] + decoding["max_new_tokens"]
    if backbone.max_positions and longest > backbone.max_positions:
        raise ValueError(f"prompts of {prompt_ids.shape[1]} tokens plus max_new_tokens={decoding['max_new_tokens']} "
                         f"exceed backbone {backbone.name!r}'s {backbone.max_positions} positions: lower the task's "
                         "decoding.max_new_tokens or data.max_length")
    if decoding["strategy"] == "beam" and decoding["num_beams"] > 1:
        return _beam_search(backbone, prompt_ids, prompt_mask, decoding, eos_id, pad_id)
    return _greedy_or_sample(backbone, prompt_ids, prompt_mask, decoding, eos_id, pad_id)


class _CachedStack:
    """The backbone's decoder stack run step by step on one key/value cache (pre-filled with the
    prefix under ``finetune=prefix``); positions count real tokens only."""

    def __init__(self, backbone: Backbone, prompt_mask: torch.Tensor):
        self.backbone = backbone
        self.stack = backbone.base
        accepted = inspect.signature(self.stack.forward).parameters
        self.cache_kwarg = _cache_kwarg(accepted)
        rows = prompt_mask.shape[0]
        if isinstance(backbone, PrefixBackbone):
            key_values = backbone.prefix()
            self.cache = prefix_cache(key_values, rows)
            slots = prompt_mask.new_ones(rows, key_values.shape[3])
        else:
            self.cache = DynamicCache()
            slots = prompt_mask.new_ones(rows, 0)
        self.mask = torch.cat([slots, prompt_mask.long()], dim=1)
        self.positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``[rows, V]`` after ``input_ids`` (the prompt, then one token at a time)."""
        hidden = self.stack(input_ids=input_ids, attention_mask=self.mask, position_ids=self.positions,
                            use_cache=True, **{self.cache_kwarg: self.cache}).last_hidden_state
        return self.backbone.vocab_logits(hidden[:, -1]).float()

    def advance(self) -> None:
        """Make room for one more token in every row."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.positions = self.positions[:, -1:] + 1

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        self.mask, self.positions = self.mask[rows], self.positions[rows]


def _greedy_or_sample(backbone, prompt_ids, prompt_mask, decoding, eos_id, pad_id) -> torch.Tensor:
    stack = _CachedStack(backbone, prompt_mask)
    sample = decoding["strategy"] == "sample"
    generator = torch.Generator(device=prompt_ids.device).manual_seed(decoding["seed"]) if sample else None
    finished = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    tokens: list[torch.Tensor] = []
    logits = stack.logits(prompt_ids)
    for step in range(decoding["max_new_tokens"]):
        chosen = _sample(logits, decoding, generator) if sample else logits.argmax(-1)
        chosen = chosen.masked_fill(finished, pad_id)
        tokens.append(chosen)
        finished |= chosen == eos_id
        if bool(finished.all()) or step + 1 == decoding["max_new_tokens"]:
            break
        stack.advance()
        logits = stack.logits(chosen[:, None])
    if not tokens:
        return prompt_ids.new_zeros(prompt_ids.shape[0], 0)
    return torch.stack(tokens, dim=1)


def _sample(logits: torch.Tensor, decoding: dict, generator: torch.Generator) -> torch.Tensor:
    """One token per row from the temperature-scaled distribution, cut to the ``top_k`` most
    likely tokens and to the smallest set whose probability reaches ``top_p``."""
    logits = logits / decoding["temperature"]
    if decoding["top_k"]:
        kth = logits.topk(min(decoding["top_k"], logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if decoding["top_p"] < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)  # mass of the tokens ranked above
        drop = (before >= decoding["top_p"]).scatter(-1, order, before >= decoding["top_p"])
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def _beam_search(backbone, prompt_ids, prompt_mask, decoding, eos_id, pad_id) -> torch.Tensor:
    """Beam search with transformers' semantics for ``early_stopping=True``: each step keeps the
    ``2K`` best continuations; one ending in ``eos`` among the first ``K`` becomes a finished
    hypothesis scored ``sum log p / length ** length_penalty`` (length: new tokens, eos included);
    a prompt is done with ``K`` finished hypotheses; at ``max_new_tokens`` the running beams join
    them. The best hypothesis wins."""
    batch, beams = prompt_ids.shape[0], decoding["num_beams"]
    penalty, limit = decoding["length_penalty"], decoding["max_new_tokens"]
    device = prompt_ids.device
    stack = _CachedStack(backbone, prompt_mask.repeat_interleave(beams, 0))
    scores = torch.zeros(batch, beams, device=device)
    scores[:, 1:] = float("-inf")  # every beam starts as the same prompt: expand only the first
    running = torch.zeros(batch * beams, 0, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    logits = stack.logits(prompt_ids.repeat_interleave(beams, 0))
    for step in range(limit):
        vocab = logits.shape[-1]
        candidates = (scores.view(-1, 1) + logits.log_softmax(-1)).view(batch, beams * vocab)
        top_scores, top_index = candidates.topk(2 * beams, dim=1)
        next_scores = torch.zeros(batch, beams, device=device)
        next_tokens = torch.full((batch, beams), pad_id, dtype=torch.long, device=device)
        next_rows = torch.arange(batch * beams, device=device).view(batch, beams)
        for b in range(batch):  # over prompts, not tokens: 2K candidates each
            if done[b]:
                continue
            kept = 0
            for rank, (score, index) in enumerate(zip(top_scores[b].tolist(), top_index[b].tolist())):
                beam, token = divmod(index, vocab)
                if token == eos_id:
                    if rank < beams:
                        sequence = running[b * beams + beam].tolist() + [eos_id]
                        finished[b].append((score / (step + 1) ** penalty, sequence))
                    continue
                next_scores[b, kept], next_tokens[b, kept], next_rows[b, kept] = score, token, b * beams + beam
                kept += 1
                if kept == beams:
                    break
            done[b] = len(finished[b]) >= beams
        rows = next_rows.view(-1)
        running = torch.cat([running[rows], next_tokens.view(-1, 1)], dim=1)
        scores = next_scores
        if all(done) or step + 1 == limit:
            break
        stack.reorder(rows)
        stack.advance()
        logits = stack.logits(next_tokens.view(-1, 1))
    best = []
    for b in range(batch):
        hypotheses = list(finished[b])
        if not done[b]:  # the running beams compete with the finished ones, normalised by their length
            length = running.shape[1]
            for beam in range(beams):
                if length and scores[b, beam] > float("-inf"):
                    hypotheses.append((float(scores[b, beam]) / length ** penalty, running[b * beams + beam].tolist()))
        best.append(max(hypotheses, key=lambda h: h[0])[1] if hypotheses else [])
    width = max((len(s) for s in best), default=0)
    return torch.tensor([s + [pad_id] * (width - len(s)) for s in best], dtype=torch.long, device=device).view(batch, width)
