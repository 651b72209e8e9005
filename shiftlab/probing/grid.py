"""The perturbations a probe applies at test time: :class:`Condition` s and the preset grids.

A condition is a shift policy from :mod:`shiftlab.shifts` with its parameters and unit, applied
to the test split instead of the training text. Only the permuting policies qualify: a probe asks
how a model reacts when the *same* words come in another order, so every word (and, for tagging,
its label) must still be there. A condition is written ``policy[:key=value,...][@unit]``:

    identity
    local_shuffle:window=3,rate=1.0@word
    ngram_shuffle:n=2@token
    token_move:rate=0.25,max_distance=3@word

The presets (``--grid``): ``full`` is the issue's grid, every permuting policy at several
strengths in word and token units; ``small`` is one or two strengths per policy in word units,
for sweeps where a probe runs once per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from shiftlab.shifts import build_policy, parse_unit

#: The parameter that sets each policy's strength (the one a grid varies), and its short name.
STRENGTH_PARAMS = {"local_shuffle": ("window", "w"), "ngram_shuffle": ("n", "n"), "token_move": ("rate", "r"),
                   "adjacent_swap": ("rate", "r"), "shuffle_replace": ("rate", "r"), "ngram_permute": ("rate", "r")}


@dataclass(frozen=True)
class Condition:
    """One perturbation of the test split. ``params`` as ``(key, value)`` pairs, so it hashes."""

    policy: str
    params: tuple[tuple[str, object], ...] = ()
    unit: str = "word"

    @property
    def is_identity(self) -> bool:
        return self.policy == "identity"

    @property
    def name(self) -> str:
        """A file- and metric-key-safe name: ``local_shuffle_w3_word``, ``identity``."""
        if self.is_identity:
            return "identity"
        parts = [self.policy]
        strength = STRENGTH_PARAMS.get(self.policy)
        for key, value in self.params:
            if strength and key == strength[0]:
                parts.append(f"{strength[1]}{_short(value)}")
        return "_".join([*parts, self.unit])

    @property
    def setting(self) -> str:
        """The parameters as the table shows them: ``window=3, rate=1.0``."""
        return ", ".join(f"{key}={_short(value)}" for key, value in self.params)

    def build(self):
        """The policy. Only permutations: a probe keeps every word (and its label)."""
        policy = build_policy(self.policy, **dict(self.params), **({} if self.is_identity else {"unit": self.unit}))
        if policy.REPLACES or policy.HIDES or policy.MARKS_TARGETS or getattr(policy, "steps", None):
            raise ValueError(f"probe condition {self.spec()!r}: {self.policy!r} replaces, deletes or inserts tokens; "
                             "a probe applies permutations only (every word and its label must stay), e.g. "
                             "local_shuffle, ngram_shuffle, token_move, adjacent_swap, rotate, global_shuffle")
        if parse_unit(self.unit)[0] == "sentence":
            raise ValueError(f"probe condition {self.spec()!r}: unit=sentence needs sentence boundaries, which the "
                             "task rows do not carry; use token, word or ngram<n>")
        return policy

    def spec(self) -> str:
        """The condition as it is written on the command line (``parse_condition`` reads it back)."""
        text = self.policy + (":" + ",".join(f"{k}={v}" for k, v in self.params) if self.params else "")
        return text if self.is_identity else f"{text}@{self.unit}"


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_condition(text: str) -> Condition:
    """``policy[:key=value,...][@unit]`` -> a checked :class:`Condition` (errors name the text)."""
    spec, _, unit = text.strip().partition("@")
    policy, _, params_text = spec.partition(":")
    params = []
    for item in filter(None, (p.strip() for p in params_text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"probe condition {text!r}: parameter {item!r} is not key=value "
                             "(write policy:key=value,key=value@unit)")
        params.append((key.strip(), _number(value.strip())))
    condition = Condition(policy.strip(), tuple(params), unit.strip() or "word")
    try:
        condition.build()
    except ValueError as error:
        message = str(error)
        raise ValueError(message if message.startswith("probe condition") else f"probe condition {text!r}: {message}") from None
    return condition


def _grid(units: tuple[str, ...], windows, ns, move_rates, swap_rates) -> list[Condition]:
    conditions = [Condition("identity", (), "token")]
    for unit in units:
        conditions += [Condition("local_shuffle", (("window", w), ("rate", 1.0)), unit) for w in windows]
        conditions += [Condition("ngram_shuffle", (("n", n),), unit) for n in ns]
        conditions += [Condition("token_move", (("rate", r), ("max_distance", 3)), unit) for r in move_rates]
        conditions += [Condition("adjacent_swap", (("rate", r),), unit) for r in swap_rates]
        conditions += [Condition("rotate", (), unit), Condition("global_shuffle", (), unit)]
    return conditions


GRIDS = {
    "full": lambda: _grid(("word", "token"), (2, 3, 4, 6), (1, 2, 3, 4), (0.1, 0.25, 0.5), (0.5, 1.0)),
    "small": lambda: _grid(("word",), (3,), (1, 2, 4), (0.25,), (1.0,)),
}


def conditions_for(grid: str | None, specs: list[str] | None = None) -> list[Condition]:
    """The conditions of a preset grid and/or explicit specs; identity always first, no duplicates."""
    if grid is not None and grid not in GRIDS:
        raise ValueError(f"unknown probe grid {grid!r}; presets: {', '.join(GRIDS)} (or give --condition)")
    chosen = GRIDS[grid]() if grid else [Condition("identity", (), "token")]
    chosen += [parse_condition(spec) for spec in specs or ()]
    unique: dict[str, Condition] = {}
    for condition in chosen:
        unique.setdefault(condition.name if condition.is_identity else condition.spec(), condition)
    ordered = list(unique.values())
    return sorted(ordered, key=lambda c: not c.is_identity)
