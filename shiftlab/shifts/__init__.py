"""Shift policies and teacher forcing: pure, vectorised tensor code.

No Lightning, Hydra or transformers imports in this package: it must stay usable (and fast) in
data-loader workers and outside any training framework.

    from shiftlab.shifts import build_policy
    policy = build_policy("token_move", rate=0.15, max_distance=3)
    out = policy(input_ids, special_mask=special, sample_ids=ids, seed=0, epoch=0)
"""

from . import noise as _noise  # noqa: F401  (registers mask, delete, infill, compose)
from . import permutations as _permutations  # noqa: F401
from . import policies as _policies  # noqa: F401  (registers the policies)
from .base import POLICIES, ShiftOutput, ShiftPolicy, Vocab, build_policy, register_policy
from .teacher_forcing import shift_right
from .units import UNITS, parse_unit

__all__ = [
    "POLICIES", "UNITS", "ShiftOutput", "ShiftPolicy", "Vocab", "build_policy", "parse_unit", "register_policy", "shift_right",
]
