"""The policy contract, the policy registry and ``build_policy``.

A policy maps ``input_ids[B, S]`` to a shifted batch of the same shape plus
``source_index[B, S]`` (the shifted row at ``j`` holds the original token at
``source_index[j]``) and ``moved_mask[B, S]`` (``source_index != j``). Every objective is
derived from those tensors, so any policy composes with any objective.

Subclasses only say how to permute *units* (see ``units.py``); the base class does the
bookkeeping that every policy shares: validation, keyed randomness, the unit view, and
turning a unit permutation into token positions.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from . import rng
from .units import UNITS, UnitView, build_units, unit_perm_to_source_index


@dataclass(frozen=True)
class ShiftOutput:
    """The shifted batch. ``input_ids[b, j] == original[b, source_index[b, j]]``."""

    input_ids: torch.Tensor
    source_index: torch.Tensor
    moved_mask: torch.Tensor


class ShiftPolicy:
    """Base class. Subclasses implement :meth:`unit_permutation`.

    ``unit`` names what moves: ``token`` (sub-word) or ``word`` (all sub-words of a word,
    together and in order). ``SUPPORTED_UNITS`` lists the units a policy accepts.
    """

    name: str = "?"
    SUPPORTED_UNITS: tuple[str, ...] = UNITS

    def __init__(self, unit: str = "token"):
        if unit not in self.SUPPORTED_UNITS:
            raise ValueError(
                f"policy {self.name!r} does not support unit={unit!r}; supported: {', '.join(self.SUPPORTED_UNITS)}"
            )
        self.unit = unit

    def unit_permutation(self, units: UnitView, keys: torch.Tensor) -> torch.Tensor:
        """Return ``perm[B, U]``: new unit position ``k`` holds old unit ``perm[b, k]``.

        Must be the identity for ``k >= units.n_units[b]`` and a permutation of each row.
        ``keys[B]`` are the per-row random keys for :mod:`shiftlab.shifts.rng`.
        """
        raise NotImplementedError

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
    ) -> ShiftOutput:
        _check_inputs(input_ids, special_mask, sample_ids, word_ids)
        keys = rng.row_keys(seed, epoch, sample_ids, view).to(input_ids.device)
        units = build_units(special_mask.to(torch.bool), self.unit, word_ids)
        perm = self.unit_permutation(units, keys)
        source_index = unit_perm_to_source_index(units, perm, input_ids.shape[1])
        shifted = torch.gather(input_ids, 1, source_index)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        return ShiftOutput(shifted, source_index, source_index != positions)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _check_inputs(input_ids, special_mask, sample_ids, word_ids) -> None:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
    if special_mask.shape != input_ids.shape:
        raise ValueError(f"special_mask shape {tuple(special_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    if word_ids is not None and word_ids.shape != input_ids.shape:
        raise ValueError(f"word_ids shape {tuple(word_ids.shape)} != input_ids shape {tuple(input_ids.shape)}")
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
