"""The policy contract, the policy registry and ``build_policy``.

A policy maps ``input_ids[B, S]`` to a shifted batch of the same shape plus
``source_index[B, S]`` (the shifted row at ``j`` holds the original token at
``source_index[j]``) and ``moved_mask[B, S]`` (``source_index != j``). Every objective is
derived from those tensors, so any policy composes with any objective.

Permuting policies only say how to permute *units* (see ``units.py``); the base class does
the bookkeeping that every policy shares: validation, keyed randomness, the unit view, and
turning a unit permutation into token positions.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property

import torch

from . import rng
from .units import UNIT_KINDS, UnitView, build_units, parse_unit, unit_perm_to_source_index


@dataclass(frozen=True)
class ShiftOutput:
    """The shifted batch, always the same shape ``[B, S]`` as the input.

    ``input_ids[b, j] == original[b, source_index[b, j]]`` wherever the token is an original
    one: everywhere for the permuting policies; where ``replaced_mask`` is false for policies
    that put new tokens in (``mask``, ``infill``); and within ``attention_mask`` for policies
    that shorten the row (``delete``, ``infill``: the freed tail becomes padding).

    Optional fields (``None`` when the policy does not use them):
    replaced_mask[B, S]   the token at j is new (a mask or random token), not an original one
    target_mask[B, S]     positions a prediction objective should score (``mask``: the selected 15 %,
                          the 10 % kept unchanged included)
    attention_mask[B, S]  the row's new extent, when the policy changed its length
    restore_ids[B, S]     original ids, at original positions, of the tokens that are no longer in
                          the output (deleted, or inside an infilled span); -100 elsewhere. With
                          ``source_index`` they restore the original exactly.
    """

    input_ids: torch.Tensor
    source_index: torch.Tensor
    moved_mask: torch.Tensor
    replaced_mask: torch.Tensor | None = None
    target_mask: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    restore_ids: torch.Tensor | None = None


@dataclass(frozen=True)
class Vocab:
    """What policies that insert tokens need to know about the tokenizer."""

    size: int
    pad_id: int
    mask_id: int | None = None
    special_ids: tuple[int, ...] = ()

    @cached_property
    def ordinary_ids(self) -> torch.Tensor:
        """Every id that is not special (computed once per vocabulary)."""
        special = torch.tensor(sorted(set(self.special_ids)), dtype=torch.long)
        allowed = torch.ones(self.size, dtype=torch.bool)
        allowed[special[(special >= 0) & (special < self.size)]] = False
        return torch.nonzero(allowed).squeeze(1)

    def random_ids(self, uniform: torch.Tensor) -> torch.Tensor:
        """Map uniforms in [0, 1) to ids drawn uniformly from the non-special vocabulary."""
        choices = self.ordinary_ids.to(uniform.device)
        pick = (uniform * len(choices)).long().clamp(max=len(choices) - 1)
        return choices[pick]


class ShiftPolicy:
    """Base class. Permuting policies implement :meth:`unit_permutation`; policies that replace,
    delete or insert tokens override :meth:`apply`.

    ``unit`` names what moves: ``token`` (sub-word), ``word`` (all sub-words of a word, together
    and in order), ``ngram<n>`` (n consecutive words), ``sentence``. ``SUPPORTED_UNITS`` lists the
    unit kinds a policy accepts.
    """

    name: str = "?"
    SUPPORTED_UNITS: tuple[str, ...] = UNIT_KINDS
    NEEDS_VOCAB: bool = False
    # What the output carries beyond a permutation; objectives that need it check these.
    MARKS_TARGETS: bool = False  # target_mask: positions to predict (mask, infill)
    REPLACES: bool = False  # replaced_mask: new tokens in the row (mask, infill)
    HIDES: bool = False  # restore_ids: original tokens no longer visible (mask, delete, infill)

    def __init__(self, unit: str = "token"):
        kind, _ = parse_unit(unit)
        if kind not in self.SUPPORTED_UNITS:
            raise ValueError(
                f"policy {self.name!r} does not support unit={unit!r}; supported: {', '.join(self.SUPPORTED_UNITS)}"
            )
        self.unit = unit
        self.vocab: Vocab | None = None

    def bind_vocab(self, vocab: Vocab) -> "ShiftPolicy":
        """Give the policy the tokenizer facts it needs (mask id, vocabulary size, specials)."""
        self.vocab = vocab
        return self

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        """Return ``perm[B, U]``: new unit position ``k`` holds old unit ``perm[b, k]``.

        Must be the identity for ``k >= units.n_units[b]`` and a permutation of each row.
        ``keys[B]`` are the per-row random keys for :mod:`shiftlab.shifts.rng`.
        """
        raise NotImplementedError

    def apply(self, input_ids: torch.Tensor, special_mask: torch.Tensor, keys: torch.Tensor,
              word_ids: torch.Tensor | None, sentence_ids: torch.Tensor | None,
              padding: torch.Tensor | None = None) -> ShiftOutput:
        """The shift itself, after validation and key derivation. Default: permute units.

        ``padding`` (true at padding positions, a subset of ``special_mask``) matters only to
        policies that change a row's length."""
        units = build_units(special_mask, self.unit, word_ids, sentence_ids)
        perm = self.unit_permutation(units, keys)
        source_index = unit_perm_to_source_index(units, perm, input_ids.shape[1])
        shifted = torch.gather(input_ids, 1, source_index)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        return ShiftOutput(shifted, source_index, source_index != positions)

    def __call__(
        self,
        input_ids: torch.Tensor,
        *,
        special_mask: torch.Tensor,
        sample_ids: torch.Tensor,
        seed: int,
        epoch: int,
        view: int | torch.Tensor = 0,
        word_ids: torch.Tensor | None = None,
        sentence_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> ShiftOutput:
        """Shift a batch. ``attention_mask`` (optional) tells padding from framing tokens; without
        it, padding is taken to be the special positions holding the vocabulary's pad id."""
        _check_inputs(input_ids, special_mask, sample_ids, word_ids, sentence_ids)
        if self.NEEDS_VOCAB and self.vocab is None:
            raise ValueError(f"policy {self.name!r} inserts tokens: call bind_vocab(Vocab(...)) first")
        keys = rng.row_keys(seed, epoch, sample_ids, view).to(input_ids.device)
        special_mask = special_mask.to(torch.bool)
        if attention_mask is not None:
            padding = attention_mask == 0
        elif self.vocab is not None:
            padding = special_mask & (input_ids == self.vocab.pad_id)
        else:
            padding = torch.zeros_like(special_mask)
        return self.apply(input_ids, special_mask, keys, word_ids, sentence_ids, padding)

    def __repr__(self) -> str:
        # the parameters only: no bound vocabulary, no private lookup tables
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "vocab" and not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def _check_inputs(input_ids, special_mask, sample_ids, word_ids, sentence_ids) -> None:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
    if special_mask.shape != input_ids.shape:
        raise ValueError(f"special_mask shape {tuple(special_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    for name, ids in (("word_ids", word_ids), ("sentence_ids", sentence_ids)):
        if ids is not None and ids.shape != input_ids.shape:
            raise ValueError(f"{name} shape {tuple(ids.shape)} != input_ids shape {tuple(input_ids.shape)}")
    if torch.as_tensor(sample_ids).numel() != input_ids.shape[0]:
        raise ValueError(f"sample_ids needs one id per row ({input_ids.shape[0]}), got {torch.as_tensor(sample_ids).numel()}")


POLICIES: dict[str, type[ShiftPolicy]] = {}


def register_policy(name: str):
    """Class decorator: make a policy available as ``POLICIES[name]`` / ``build_policy(name)``."""

    def wrap(cls: type[ShiftPolicy]) -> type[ShiftPolicy]:
        if name in POLICIES:
            raise ValueError(f"policy {name!r} registered twice")
        cls.name = name
        POLICIES[name] = cls
        return cls

    return wrap


def build_policy(name: str, **params) -> ShiftPolicy:
    """Build a registered policy by name; unknown names and parameters fail naming the valid ones."""
    if name not in POLICIES:
        raise ValueError(f"unknown shift policy {name!r}; valid policies: {', '.join(sorted(POLICIES))}")
    cls = POLICIES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"shift policy {name!r} got unknown parameter(s) {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'none'}"
        )
    return cls(**params)
