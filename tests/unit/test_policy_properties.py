"""Property-based tests of the policy contract (docs/shift_catalogue.md, B.1; ``ShiftOutput`` in base.py).

Everything here is generic over ``POLICIES``: every registered policy is tested with every unit
kind in its ``SUPPORTED_UNITS`` (token, word, ngram2, sentence), built with its defaults
(``unit`` is passed only when the constructor accepts it; a vocabulary is bound when the built
policy ``NEEDS_VOCAB``). A policy that cannot be built from defaults alone (``compose``) is
listed in ``REQUIRED_PARAMS`` with the parameters used; an unlisted one fails. A policy that
lands in the registry later is covered without editing this file. Which checks apply is
decided from the output itself:

* every policy    the shared contract (shapes, ``input_ids == original[source_index]`` on
                  original tokens, framing kept and fixed, padding never content, ``moved_mask``),
                  units never split, determinism, invariance to batch composition;
* permuting       ``replaced_mask is None and attention_mask is None``: ``source_index`` is a
                  permutation of each row, tokens are preserved, rows of < 2 units unchanged;
* restorable      ``restore_ids is not None`` (``mask``, ``delete``, ``infill``, ``compose``):
                  the original is rebuilt exactly from the output fields alone.

Rates are checked on a large fixed batch against what each policy's docstring says
(``RATE_EXPECTATIONS``), and for every policy with a ``rate``: rate 0 changes nothing, a higher
rate changes more.

All modules of ``shiftlab.shifts`` are imported so that a policy file that exists but is not yet
imported by the package ``__init__`` is registered (and tested) too.
"""

from __future__ import annotations

import bisect
import importlib
import inspect
import math
import pkgutil
import random
from dataclasses import dataclass, fields, replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shiftlab.shifts as shifts_package
from shiftlab.shifts import POLICIES, ShiftOutput, Vocab, build_policy, parse_unit

_IMPORT_ERRORS: dict[str, str] = {}
for _module in pkgutil.iter_modules(shifts_package.__path__):
    try:
        importlib.import_module(f"{shifts_package.__name__}.{_module.name}")
    except Exception as exc:  # reported by test_every_shift_module_imports, never swallowed
        _IMPORT_ERRORS[_module.name] = repr(exc)

PAD, CLS, SEP, MASK = 0, 1, 2, 3
FIRST_CONTENT_ID = 10
VOCAB = Vocab(size=1000, pad_id=PAD, mask_id=MASK, special_ids=(PAD, CLS, SEP, MASK))
UNIT_FOR_KIND = {"token": "token", "char": "char", "word": "word", "ngram": "ngram2", "sentence": "sentence"}
IGNORE = -100
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- policies


def _accepts(name: str, param: str) -> bool:
    return param in inspect.signature(POLICIES[name].__init__).parameters


# Policies that cannot be built from their defaults alone, with the parameter sets this file
# uses for them. Explicit, not skipped: a policy that neither builds with defaults nor is listed
# here fails test_every_policy_builds (and every case built for it).
REQUIRED_PARAMS: dict[str, list[dict]] = {
    "compose": [
        {"steps": [{"name": "infill"}, {"name": "rotate", "params": {"unit": "word"}}]},
        {"steps": [{"name": "mask", "params": {"unit": "word"}}, {"name": "token_move"}]},
        {"steps": [{"name": "delete", "params": {"rate": 0.3}}, {"name": "global_shuffle"}]},
        {"steps": [{"name": "local_shuffle", "params": {"rate": 0.5}}, {"name": "infill", "params": {"rate": 0.3}}]},
    ],
}


def make_policy(name: str, unit: str | None, **params):
    """``build_policy`` with defaults (plus ``params``); ``unit`` only if the constructor takes it;
    a vocabulary bound when the built policy says it needs one."""
    if unit is not None and _accepts(name, "unit"):
        params["unit"] = unit
    policy = build_policy(name, **params)
    if policy.NEEDS_VOCAB:  # the instance, not the class: compose decides from its steps
        policy.bind_vocab(VOCAB)
    return policy


def policy_cases() -> list[tuple[str, str | None, dict]]:
    """(name, unit, params) for every registered policy and every unit kind it supports.

    ``unit`` is ``None`` for a policy whose constructor takes no ``unit``: it is built as is.
    A unit kind this file does not know is passed through verbatim, so it fails loudly.
    """
    cases = []
    for name in sorted(POLICIES):
        for params in REQUIRED_PARAMS.get(name, [{}]):
            if _accepts(name, "unit"):
                cases += [(name, UNIT_FOR_KIND.get(kind, kind), params) for kind in POLICIES[name].SUPPORTED_UNITS]
            else:
                cases.append((name, None, params))
    return cases


def _case_id(case) -> str:
    name, unit, params = case
    suffix = f"[{REQUIRED_PARAMS[name].index(params)}]" if name in REQUIRED_PARAMS else ""
    return f"{name}{suffix}-{unit or 'default'}"


CASES = policy_cases()
CASE_IDS = [_case_id(c) for c in CASES]


def effective_unit(policy) -> str:
    return getattr(policy, "unit", "token")


# ----------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    ids: torch.Tensor            # [B, S]: [CLS] content [SEP] [PAD]...
    special: torch.Tensor        # framing and padding
    word_ids: torch.Tensor       # -1 on framing and padding
    sentence_ids: torch.Tensor   # -1 on framing and padding
    lengths: torch.Tensor        # content tokens per row
    sample_ids: torch.Tensor
    seed: int
    epoch: int
    view: int | torch.Tensor

    @property
    def shape(self):
        return tuple(self.ids.shape)

    def extent(self) -> torch.Tensor:
        """Original non-padding positions (framing included)."""
        return torch.arange(self.shape[1]).unsqueeze(0) < (self.lengths + 2).unsqueeze(1)

    def framing(self) -> torch.Tensor:
        return self.special & self.extent()

    def rows(self, index: torch.Tensor, width: int | None = None) -> "Batch":
        """The rows ``index`` (in that order), right-padded to ``width``."""
        width = width or self.shape[1]
        extra = width - self.shape[1]

        def take(t, fill):
            t = t[index]
            return torch.cat([t, torch.full((t.shape[0], extra), fill, dtype=t.dtype)], dim=1) if extra else t

        view = self.view[index] if torch.is_tensor(self.view) else self.view
        return replace(self, ids=take(self.ids, PAD), special=take(self.special, True), word_ids=take(self.word_ids, -1),
                       sentence_ids=take(self.sentence_ids, -1), lengths=self.lengths[index],
                       sample_ids=self.sample_ids[index], view=view)


def build_batch(lengths, pieces, sentence_cuts, seq_len, token_seed, sample_ids, seed, epoch, view) -> Batch:
    B = len(lengths)
    ids = torch.full((B, seq_len), PAD)
    special = torch.ones(B, seq_len, dtype=torch.bool)
    word_ids = torch.full((B, seq_len), -1)
    sentence_ids = torch.full((B, seq_len), -1)
    g = torch.Generator().manual_seed(token_seed)
    for b, n in enumerate(lengths):
        ids[b, 0] = CLS
        ids[b, n + 1] = SEP
        if n:
            # few distinct ids, so rows have repeated tokens (multiset checks must count)
            ids[b, 1:n + 1] = torch.randint(FIRST_CONTENT_ID, FIRST_CONTENT_ID + max(2, n), (n,), generator=g)
            special[b, 1:n + 1] = False
            words = [w for w, size in enumerate(pieces[b]) for _ in range(size)][:n]
            word_ids[b, 1:n + 1] = torch.tensor(words)
            cuts = sorted(set(sentence_cuts[b]))
            sentence_ids[b, 1:n + 1] = torch.tensor([bisect.bisect_right(cuts, w) for w in words])
    return Batch(ids, special, word_ids, sentence_ids, torch.tensor(lengths), torch.tensor(sample_ids, dtype=torch.long),
                 seed, epoch, view)


@st.composite
def batches(draw, max_batch: int = 6, max_seq: int = 40) -> Batch:
    """B in 1..6, S in 2..40; per row 0..S-2 content tokens (0, 1 and S-2 drawn often), words of
    1-3 sub-words, 1-4 sentences of whole words; random sample ids (beyond 32 bits), seed, epoch,
    view (one for the batch or one per row). Row lengths are drawn by hypothesis (so they shrink);
    the word and sentence structure of each row comes from a drawn seed (cheaper to generate)."""
    B = draw(st.integers(1, max_batch))
    S = draw(st.integers(2, max_seq))
    lengths = draw(st.lists(st.one_of(st.just(0), st.just(min(1, S - 2)), st.just(S - 2), st.integers(0, S - 2)),
                            min_size=B, max_size=B))
    structure = random.Random(draw(st.integers(0, 2**32 - 1), label="structure seed"))
    pieces, cuts = [], []
    for n in lengths:
        row_pieces = []
        while sum(row_pieces) < n:
            row_pieces.append(structure.randint(1, 3))
        n_words = len(row_pieces)
        n_sentences = structure.randint(1, min(4, max(1, n_words)))
        pieces.append(row_pieces)
        cuts.append(structure.sample(range(1, n_words), n_sentences - 1) if n_words >= 2 else [])
    sample_ids = draw(st.lists(st.integers(0, 2**40), min_size=B, max_size=B, unique=True))
    view = draw(st.one_of(st.integers(0, 3),
                          st.lists(st.integers(0, 3), min_size=B, max_size=B).map(lambda v: torch.tensor(v))))
    return build_batch(lengths, pieces, cuts, S, draw(st.integers(0, 2**31 - 1), label="token seed"), sample_ids,
                       draw(st.integers(0, 2**31 - 1), label="seed"), draw(st.integers(0, 100), label="epoch"), view)


def run(policy, b: Batch) -> ShiftOutput:
    return policy(b.ids, special_mask=b.special, sample_ids=b.sample_ids, seed=b.seed, epoch=b.epoch, view=b.view,
                  word_ids=b.word_ids, sentence_ids=b.sentence_ids)


def unit_ids(b: Batch, unit: str) -> torch.Tensor:
    """``[B, S]``: the unit each content token belongs to (-1 on framing and padding), computed
    independently of units.py from the batch's word and sentence ids."""
    kind, n = parse_unit(unit)
    content = ~b.special
    if kind in ("token", "char"):
        ids = torch.cumsum(content.long(), dim=1) - 1
    elif kind == "word":
        ids = b.word_ids
    elif kind == "ngram":
        ids = torch.div(b.word_ids, n, rounding_mode="floor")
    else:
        ids = b.sentence_ids
    return torch.where(content, ids, -1)


def n_units(b: Batch, unit: str) -> list[int]:
    return [len(set(row[row >= 0].tolist())) for row in unit_ids(b, unit)]


# ----------------------------------------------------------------------------- output views


def new_extent(b: Batch, out: ShiftOutput) -> torch.Tensor:
    return out.attention_mask.bool() if out.attention_mask is not None else b.extent()


def replaced(b: Batch, out: ShiftOutput) -> torch.Tensor:
    return out.replaced_mask.bool() if out.replaced_mask is not None else torch.zeros(b.shape, dtype=torch.bool)


def original_positions(b: Batch, out: ShiftOutput) -> torch.Tensor:
    """Output positions that hold an original token: inside the new extent and not replaced."""
    return new_extent(b, out) & ~replaced(b, out)


def is_permuting(out: ShiftOutput) -> bool:
    return out.replaced_mask is None and out.attention_mask is None


def describe(b: Batch, out: ShiftOutput, row: int | None = None) -> str:
    rows = range(b.shape[0]) if row is None else [row]
    lines = [f"seed={b.seed} epoch={b.epoch} view={b.view} sample_ids={b.sample_ids.tolist()}"]
    for r in rows:
        lines.append(f"row {r}: ids={b.ids[r].tolist()} word_ids={b.word_ids[r].tolist()} "
                     f"sentence_ids={b.sentence_ids[r].tolist()}")
        lines.append(f"       out={out.input_ids[r].tolist()} source_index={out.source_index[r].tolist()}")
        for name in ("replaced_mask", "target_mask", "attention_mask", "restore_ids"):
            value = getattr(out, name)
            if value is not None:
                lines.append(f"       {name}={value[r].long().tolist()}")
    return "\n".join(lines)


def assert_same_output(a: ShiftOutput, b: ShiftOutput, what: str) -> None:
    for f in fields(ShiftOutput):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert (x is None) == (y is None), f"{what}: {f.name} is None in one output only"
        if x is not None:
            assert torch.equal(x, y), f"{what}: {f.name} differs\n{x}\n{y}"


# ----------------------------------------------------------------------------- checks


def check_contract(b: Batch, out: ShiftOutput) -> None:
    B, S = b.shape
    positions = torch.arange(S).expand(B, S)
    for f in fields(ShiftOutput):
        value = getattr(out, f.name)
        if value is not None:
            assert tuple(value.shape) == (B, S), f"{f.name} has shape {tuple(value.shape)}, input {(B, S)}"
    extent, framing, padding = b.extent(), b.framing(), ~b.extent()
    new, rep = new_extent(b, out), replaced(b, out)
    keep = new & ~rep
    src = out.source_index
    assert ((src >= 0) & (src < S))[keep].all(), "source_index out of range on an original token"
    src_c = src.clamp(0, S - 1)
    gathered = torch.gather(b.ids, 1, src_c)
    bad = keep & (out.input_ids != gathered)
    assert not bad.any(), f"input_ids != original[source_index] at {bad.nonzero().tolist()}\n{describe(b, out)}"
    # moved_mask is source_index != j, within the (new) extent
    assert torch.equal(out.moved_mask.bool()[new], (src != positions)[new]), describe(b, out)
    # padding never becomes content; outside the new extent there is only padding
    assert not (new & padding).any(), f"the output extent grew into padding\n{describe(b, out)}"
    assert (out.input_ids[~new] == PAD).all(), f"non-padding outside the output extent\n{describe(b, out)}"
    assert torch.gather(extent, 1, src_c)[keep].all(), f"an original token comes from padding\n{describe(b, out)}"
    # the extent is a prefix of the row
    assert (new.long().cummin(dim=1).values == new.long()).all(), f"attention_mask is not a prefix\n{describe(b, out)}"
    # new tokens only inside the extent, never a framing or padding id, never on framing
    assert not (rep & ~new).any(), describe(b, out)
    assert not torch.isin(out.input_ids[rep], torch.tensor([PAD, CLS, SEP])).any(), describe(b, out)
    if out.target_mask is not None:
        assert not (out.target_mask.bool() & ~new).any(), f"target outside the extent\n{describe(b, out)}"
    if out.restore_ids is not None:
        assert (out.restore_ids[padding | framing] == IGNORE).all(), f"restore_ids on framing/padding\n{describe(b, out)}"
    if out.attention_mask is None:
        # same length: framing and padding stay exactly where they were, and are kept
        fixed = framing | padding
        assert torch.equal(src[fixed], positions[fixed]), f"a special token or padding moved\n{describe(b, out)}"
        assert torch.equal(out.input_ids[fixed], b.ids[fixed]), describe(b, out)
        assert not rep[fixed].any(), f"a special token was replaced\n{describe(b, out)}"
    else:
        # shortened row: [CLS] stays first, [SEP] is the last token of the new extent, both kept
        for r in range(B):
            end = int(new[r].sum())
            last = int(b.lengths[r]) + 1
            assert end >= 2, f"row {r} lost its framing\n{describe(b, out, r)}"
            assert int(src[r, 0]) == 0 and int(out.input_ids[r, 0]) == CLS and not rep[r, 0], describe(b, out, r)
            assert int(src[r, end - 1]) == last and int(out.input_ids[r, end - 1]) == SEP and not rep[r, end - 1], \
                f"row {r}: [SEP] is not the last token of the new extent\n{describe(b, out, r)}"
            inner = src[r, 1:end - 1][keep[r, 1:end - 1]]
            assert not ((inner == 0) | (inner == last)).any(), describe(b, out, r)
    if is_permuting(out):
        assert torch.equal(src.sort(dim=1).values, positions), f"source_index is not a permutation\n{describe(b, out)}"
        assert torch.equal(out.input_ids.sort(dim=1).values, b.ids.sort(dim=1).values), describe(b, out)


def check_units_whole(b: Batch, out: ShiftOutput, unit: str) -> None:
    """Original tokens of one unit form one run in the output, in their original order; a unit
    whose tokens are all kept sits on consecutive positions (adjacent and in order)."""
    uid = unit_ids(b, unit)
    keep = original_positions(b, out)
    src = out.source_index.clamp(0, b.shape[1] - 1)
    for r in range(b.shape[0]):
        sizes: dict[int, int] = {}
        for u in uid[r][uid[r] >= 0].tolist():
            sizes[u] = sizes.get(u, 0) + 1
        seq = [(j, int(src[r, j]), int(uid[r, src[r, j]])) for j in range(b.shape[1]) if keep[r, j] and uid[r, src[r, j]] >= 0]
        seen, previous = set(), None
        for k, (j, s, u) in enumerate(seq):
            if u != previous:
                assert u not in seen, f"row {r}: unit {u} of {unit!r} is split (output position {j})\n{describe(b, out, r)}"
                seen.add(u)
            elif s <= seq[k - 1][1]:
                raise AssertionError(f"row {r}: pieces of unit {u} out of order at {j}\n{describe(b, out, r)}")
            previous = u
        for u, size in sizes.items():
            where = [(j, s) for j, s, v in seq if v == u]
            if len(where) == size:
                js, ss = zip(*where)
                assert list(js) == list(range(js[0], js[0] + size)) and list(ss) == list(range(ss[0], ss[0] + size)), \
                    f"row {r}: unit {u} of {unit!r} not adjacent/in order\n{describe(b, out, r)}"


def restore(out: ShiftOutput) -> torch.Tensor:
    """The original batch, from the output fields alone (ShiftOutput docstring): original tokens
    go back to ``source_index``, removed ones come from ``restore_ids``, the rest is padding."""
    B, S = out.input_ids.shape
    keep = torch.ones(B, S, dtype=torch.bool)
    if out.attention_mask is not None:
        keep &= out.attention_mask.bool()
    if out.replaced_mask is not None:
        keep &= ~out.replaced_mask.bool()
    restored = torch.full((B, S), IGNORE, dtype=out.input_ids.dtype)
    for r in range(B):
        js = keep[r].nonzero().squeeze(1)
        targets = out.source_index[r, js]
        assert len(set(targets.tolist())) == len(targets), f"row {r}: an original token appears twice in the output"
        restored[r, targets] = out.input_ids[r, js]
        removed = out.restore_ids[r] != IGNORE
        assert not (removed & (restored[r] != IGNORE)).any(), f"row {r}: a token is both in the output and in restore_ids"
        restored[r] = torch.where(removed, out.restore_ids[r], restored[r])
    return torch.where(restored == IGNORE, torch.full_like(restored, PAD), restored)


# ----------------------------------------------------------------------------- the tests


def test_every_shift_module_imports():
    assert not _IMPORT_ERRORS, _IMPORT_ERRORS


def test_every_policy_builds():
    assert CASES
    for name, unit, params in CASES:
        policy = make_policy(name, unit, **params)  # a failure here is a bug: SUPPORTED_UNITS promised it
        if unit is not None:
            assert policy.unit == unit
        for kind in POLICIES[name].SUPPORTED_UNITS:
            assert kind in UNIT_FOR_KIND, f"{name}: unknown unit kind {kind!r} in SUPPORTED_UNITS"


def test_unsupported_units_are_refused():
    for name in POLICIES:
        if not _accepts(name, "unit"):
            continue
        for kind, unit in UNIT_FOR_KIND.items():
            if kind not in POLICIES[name].SUPPORTED_UNITS:
                with pytest.raises(ValueError, match="unit"):
                    make_policy(name, unit, **REQUIRED_PARAMS.get(name, [{}])[0])


@pytest.mark.parametrize("name,unit,params", CASES, ids=CASE_IDS)
@SETTINGS
@given(b=batches())
def test_contract(name, unit, params, b):
    policy = make_policy(name, unit, **params)
    before = [t.clone() for t in (b.ids, b.special, b.word_ids, b.sentence_ids, b.sample_ids)]
    out = run(policy, b)
    for original, now in zip(before, (b.ids, b.special, b.word_ids, b.sentence_ids, b.sample_ids)):
        assert torch.equal(original, now), "the policy modified its input"
    check_contract(b, out)


@pytest.mark.parametrize("name,unit,params", CASES, ids=CASE_IDS)
@SETTINGS
@given(b=batches())
def test_units_are_never_split(name, unit, params, b):
    policy = make_policy(name, unit, **params)
    check_units_whole(b, run(policy, b), effective_unit(policy))


@pytest.mark.parametrize("name,unit,params", CASES, ids=CASE_IDS)
@SETTINGS
@given(b=batches())
def test_deterministic_per_key(name, unit, params, b):
    first = run(make_policy(name, unit, **params), b)
    again = run(make_policy(name, unit, **params), replace(b, ids=b.ids.clone(), special=b.special.clone(),
                                                 word_ids=b.word_ids.clone(), sentence_ids=b.sentence_ids.clone()))
    assert_same_output(first, again, "same key, fresh policy")


@pytest.mark.parametrize("name,unit,params", CASES, ids=CASE_IDS)
@SETTINGS
@given(b=batches(), data=st.data())
def test_invariant_to_batch_composition(name, unit, params, b, data):
    policy = make_policy(name, unit, **params)
    full = run(policy, b)
    B, S = b.shape
    order = torch.arange(B - 1, -1, -1)
    reversed_out = run(policy, b.rows(order))
    assert_same_output(reversed_out, ShiftOutput(*[None if getattr(full, f.name) is None else getattr(full, f.name)[order]
                                                    for f in fields(ShiftOutput)]), "rows reversed")
    subset = sorted(data.draw(st.sets(st.integers(0, B - 1), min_size=1), label="subset"))
    extra = data.draw(st.integers(1, 8), label="extra padding")
    index = torch.tensor(subset)
    alone = run(policy, b.rows(index, width=S + extra))
    within = new_extent(b, full)[index]
    for f in fields(ShiftOutput):
        mine, theirs = getattr(alone, f.name), getattr(full, f.name)
        assert (mine is None) == (theirs is None), f.name
        if mine is None:
            continue
        theirs = theirs[index]
        if f.name in ("source_index", "moved_mask") and full.attention_mask is not None:
            # defined within the new extent only (ShiftOutput docstring)
            assert torch.equal(mine[:, :S][within], theirs[within]), f"{f.name}: subset {subset} padded to {S + extra}"
        else:
            assert torch.equal(mine[:, :S], theirs), f"{f.name}: subset {subset} padded to {S + extra}\n{mine}\n{theirs}"
    tail = alone.input_ids[:, S:]
    assert (tail == PAD).all()
    if alone.attention_mask is None:
        assert torch.equal(alone.source_index[:, S:], torch.arange(S, S + extra).expand_as(tail))
    else:
        assert not alone.attention_mask[:, S:].bool().any()


@pytest.mark.parametrize("name,unit,params", CASES, ids=CASE_IDS)
@SETTINGS
@given(b=batches())
def test_permuting_rows_with_fewer_than_two_units_are_unchanged(name, unit, params, b):
    policy = make_policy(name, unit, **params)
    out = run(policy, b)
    if not is_permuting(out):
        return
    for r, count in enumerate(n_units(b, effective_unit(policy))):
        if count < 2:
            assert torch.equal(out.input_ids[r], b.ids[r]) and not out.moved_mask[r].any(), \
                f"row {r} has {count} unit(s) but changed\n{describe(b, out, r)}"


@pytest.mark.parametrize("name,unit,params", CASES, ids=CASE_IDS)
@SETTINGS
@given(b=batches())
def test_length_changing_output_restores_the_original(name, unit, params, b):
    out = run(make_policy(name, unit, **params), b)
    if out.restore_ids is None:
        assert out.attention_mask is None, "a policy that shortens rows must give restore_ids"
        return
    rebuilt = restore(out)
    assert torch.equal(rebuilt, b.ids), f"restoration failed\nrebuilt={rebuilt.tolist()}\n{describe(b, out)}"


@pytest.mark.parametrize("unit", [UNIT_FOR_KIND[k] for k in POLICIES["rotate"].SUPPORTED_UNITS])
@SETTINGS
@given(b=batches())
def test_rotate_is_never_the_identity(unit, b):
    out = run(make_policy("rotate", unit), b)
    for r, count in enumerate(n_units(b, unit)):
        if count >= 2:
            assert out.moved_mask[r].any(), f"row {r} has {count} units and was not rotated\n{describe(b, out, r)}"


def _ngram_permute_units():
    if "ngram_permute" not in POLICIES:
        return []
    return [UNIT_FOR_KIND[k] for k in POLICIES["ngram_permute"].SUPPORTED_UNITS]


@pytest.mark.parametrize("unit", _ngram_permute_units())
@SETTINGS
@given(b=batches(max_seq=30))
def test_ngram_permute_moves_whole_units_from_one_unit_slot_to_another(unit, b):
    """ngram_permute docstring (mix_lengths=False): "Nothing but those spans moves: the kept spans
    and all unselected tokens stay exactly in place, and a moved span lands whole, in order, on
    another selected span's slot." Which spans were selected is internal, so this checks what that
    implies: cut the moved positions into pieces (runs whose sources are consecutive too); each
    piece comes from whole units and lands exactly on whole units of the original layout, and every
    position it came from was itself refilled. (An earlier version exchanged spans of equal length
    in *words*, so the words between two exchanged spans of different sub-word lengths were
    displaced, by a sub-word count, off their units' boundaries. An earlier form of this test
    checked "a unit still at its own unit rank did not move", which is not implied: two exchanged
    slots of the same token length may hold different numbers of units, and a moved unit can land
    at its own rank by chance; hypothesis found one in CI.)"""
    policy = make_policy("ngram_permute", unit, rate=0.5)
    out = run(policy, b)
    uid = unit_ids(b, unit)
    for r in range(b.shape[0]):
        content = (~b.special[r]).nonzero().squeeze(1).tolist()
        src = out.source_index[r].tolist()
        units = [int(uid[r, j]) for j in content]
        starts = {j for k, j in enumerate(content) if k == 0 or units[k] != units[k - 1]}
        ends = {j for k, j in enumerate(content) if k == len(content) - 1 or units[k] != units[k + 1]}
        moved = {j for j in content if src[j] != j}
        pieces: list[list[int]] = []  # output positions of each piece
        for j in content:
            if j not in moved:
                continue
            if pieces and pieces[-1][-1] == j - 1 and src[j] == src[j - 1] + 1:
                pieces[-1].append(j)
            else:
                pieces.append([j])
        for piece in pieces:
            first, last = piece[0], piece[-1]
            where = f"row {r}: moved piece at {first}..{last} from {src[first]}..{src[last]}\n{describe(b, out, r)}"
            assert first in starts and last in ends, "lands off its slot's unit boundaries: " + where
            assert src[first] in starts and src[last] in ends, "is not made of whole units: " + where
            assert all(src[j] in moved for j in piece), "left its slot unfilled: " + where


# ----------------------------------------------------------------------------- rates (large fixed batch)

RATE_ROWS, RATE_LEN = 400, 60


def rate_batch() -> Batch:
    """400 rows x 60: [CLS] 58 content tokens [SEP], words of 1-3 sub-words, 1-4 sentences."""
    g = torch.Generator().manual_seed(1234)
    n = RATE_LEN - 2
    pieces, cuts = [], []
    for _ in range(RATE_ROWS):
        row = torch.randint(1, 4, (n,), generator=g).tolist()
        total, k = 0, 0
        while total < n:
            total += row[k]
            k += 1
        pieces.append(row[:k])
        n_sent = int(torch.randint(1, 5, (1,), generator=g))
        cuts.append(sorted(torch.randperm(k - 1, generator=g)[:n_sent - 1].add(1).tolist()))
    b = build_batch([n] * RATE_ROWS, pieces, cuts, RATE_LEN, 99, list(range(RATE_ROWS)), 0, 0, 0)
    return replace(b, ids=torch.where(b.special, b.ids, torch.randint(FIRST_CONTENT_ID, VOCAB.size, b.shape, generator=g)))


def rate_param(name: str) -> str | None:
    return "rate" if _accepts(name, "rate") else None


RATE_POLICIES = sorted(name for name in POLICIES if rate_param(name))


def measurement_unit(name: str) -> str | None:
    if not _accepts(name, "unit"):
        return None
    for kind in ("token", "word", "ngram", "sentence"):
        if kind in POLICIES[name].SUPPORTED_UNITS:
            return UNIT_FOR_KIND[kind]
    raise AssertionError(f"{name} supports no unit")


def affected_fraction(b: Batch, out: ShiftOutput, unit: str) -> float:
    """Fraction of units the policy acted on: removed (``restore_ids``) for length-changing
    policies, targeted (else replaced) for replacing policies, moved for permuting ones. A unit
    counts if any of its tokens does."""
    content = ~b.special
    if out.attention_mask is not None:
        hit_at_source = out.restore_ids != IGNORE
    else:
        if out.target_mask is not None:
            hit = out.target_mask.bool()
        elif out.replaced_mask is not None:
            hit = out.replaced_mask.bool()
        else:
            hit = out.moved_mask.bool()
        # map output positions back to the original tokens they hold (source_index is a permutation here)
        assert torch.equal(out.source_index.sort(dim=1).values, torch.arange(b.shape[1]).expand(b.shape))
        hit_at_source = torch.zeros_like(hit).scatter_(1, out.source_index, hit)
    uid = unit_ids(b, unit)
    hits, total = 0, 0
    for r in range(b.shape[0]):
        units = uid[r][content[r]]
        flags = hit_at_source[r][content[r]]
        unit_hit = torch.zeros(int(units.max()) + 1, dtype=torch.bool).index_put_((units,), flags, accumulate=True)
        hits += int(unit_hit.sum())
        total += len(unit_hit)
    return hits / total


@pytest.fixture(scope="module")
def big_batch():
    return rate_batch()


@pytest.mark.parametrize("name", RATE_POLICIES)
def test_rate_zero_changes_nothing_and_higher_rates_change_more(name, big_batch):
    unit = measurement_unit(name)
    measured = []
    for rate in (0.0, 0.05, 0.2, 0.5):
        policy = make_policy(name, unit, rate=rate)
        out = run(policy, big_batch)
        measured.append(affected_fraction(big_batch, out, effective_unit(policy)))
        if rate == 0.0:
            assert torch.equal(out.input_ids, big_batch.ids), f"{name}: rate=0 changed the batch"
            assert not out.moved_mask.any(), f"{name}: rate=0 moved tokens"
            for optional in ("replaced_mask", "target_mask"):
                value = getattr(out, optional)
                assert value is None or not value.any(), f"{name}: rate=0 gave a non-empty {optional}"
            assert out.restore_ids is None or (out.restore_ids == IGNORE).all()
    assert measured[0] == 0.0, (name, measured)
    assert all(b >= a - 0.01 for a, b in zip(measured, measured[1:])), (name, measured)
    assert measured[-1] > measured[1] > 0, (name, measured)


def _token_move_expected(rate: float, max_distance: int, n: int) -> float:
    """Docstring: a picked unit moves ``d`` (uniform over the non-zero offsets in
    ``[-max_distance, max_distance]`` inside the row) and the ``|d|`` units it passes shift by
    one: ``rate * (1 + E|d|)`` moved units, E|d| averaged over positions (edges have fewer offsets)."""
    total = 0.0
    for k in range(n):
        left, right = min(k, max_distance), min(n - 1 - k, max_distance)
        e_abs = (left * (left + 1) / 2 + right * (right + 1) / 2) / (left + right)
        total += 1 + e_abs
    return rate * total / n


def _infill_expected(rate: float, lam: float, n: int) -> float:
    """Docstring: a span starts at each unit with probability ``rate / E[L]``, ``L = max(1,
    Poisson(lam))`` units long; overlapping spans merge, spans stop at the row end. A unit is
    covered unless no span started at or before it reaches it (exact, edges included)."""
    pmf = [math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1)) for k in range(int(lam * 4 + 40))]
    pmf[1] += pmf[0]
    pmf[0] = 0.0
    mean = sum(k * p for k, p in enumerate(pmf))
    start = min(1.0, rate / mean)
    longer_than = [sum(pmf[m + 1:]) for m in range(n)]  # P(L > m)
    covered = 0.0
    for k in range(n):
        miss = 1.0
        for j in range(k + 1):
            miss *= 1 - start * longer_than[k - j]
        covered += 1 - miss
    return covered / n


def _shuffle_replace_expected(rate: float, n: int) -> float:
    """Docstring: picked units form one cycle, so all move, "less the rows where a single unit
    is picked": E[moved] / n = rate - P(exactly one picked) / n."""
    return rate - n * rate * (1 - rate) ** (n - 1) / n


def acted_on(policy, b: Batch) -> float:
    return affected_fraction(b, run(policy, b), effective_unit(policy))


def moved_tokens(policy, b: Batch) -> float:
    """Fraction of content tokens that moved."""
    return run(policy, b).moved_mask[~b.special].float().mean().item()


def rows_permuted(policy, b: Batch) -> float:
    """Fraction of rows with >= 2 units in which anything moved, over 5 epochs (2000 draws)."""
    eligible = torch.tensor(n_units(b, effective_unit(policy))) >= 2
    hits = [run(policy, replace(b, epoch=e)).moved_mask[eligible].any(dim=1).float().mean().item() for e in range(5)]
    return sum(hits) / len(hits)


N = RATE_LEN - 2  # content units per row of the rate batch (unit=token)


@dataclass(frozen=True)
class Expect:
    """What a policy's docstring says about how much it acts, at ``params``.
    ``about``: the measured value is within ``rel`` of it; ``at_most``: an upper bound."""

    params: dict
    about: float | None = None
    rel: float = 0.1
    at_most: float | None = None
    measure: object = acted_on
    why: str = ""


RATE_EXPECTATIONS: dict[str, list[Expect]] = {
    "token_move": [
        *[Expect({"rate": r, "max_distance": d}, _token_move_expected(r, d, N), 0.15,
                 why="moved fraction about rate * (1 + E|d|)") for r, d in ((0.02, 3), (0.05, 1), (0.05, 3))],
        # the default rate: two picks in one gap collide, so fewer move than the first-order formula
        # (measured 0.354 vs 0.448 on this batch)
        Expect({}, _token_move_expected(0.15, 3, N), 0.25, why="defaults, first order"),
    ],
    "local_shuffle": [Expect({"rate": r}, r, 0.25, why="the fraction of moved units is about rate") for r in (0.05, 0.15, 0.4)],
    "adjacent_swap": [Expect({"rate": r}, r * (N // 2 + (N - 1) // 2) / N, 0.1,
                             why="moved fraction is rate up to the units in an incomplete pair at the row's ends")
                      for r in (0.05, 0.15, 0.4)],
    "shuffle_replace": [Expect({"rate": r}, _shuffle_replace_expected(r, N), 0.1,
                               why="moved fraction is rate, less the rows where a single unit is picked")
                        for r in (0.05, 0.15, 0.4)],
    "ngram_permute": [
        # "Measured at rate 0.15 (moved tokens / (rate * 0.9)): token units 0.6x for rows of 60
        # tokens [...]; word units (1-3 sub-words per word) 0.2x"
        Expect({"rate": 0.15, "unit": "token"}, 0.6 * 0.15 * 0.9, 0.25, measure=moved_tokens,
               why="token units: 0.6x of rate * (1 - keep_ratio) for rows of 60 tokens"),
        Expect({"rate": 0.15, "unit": "word"}, 0.2 * 0.15 * 0.9, 0.3, measure=moved_tokens,
               why="word units (1-3 sub-words): 0.2x of rate * (1 - keep_ratio) for rows of 60 tokens"),
        # mix_lengths: "about 0.45 [...] of all tokens for rows of 60 [...] tokens at rate 0.15"
        Expect({"rate": 0.15, "unit": "token", "mix_lengths": True}, 0.45, 0.2, measure=moved_tokens,
               why="mix_lengths: about 0.45 of all tokens for rows of 60 tokens at rate 0.15"),
        # mix_lengths=False: "the moved fraction is below rate * (1 - keep_ratio)"
        *[Expect({"rate": r, "unit": u}, at_most=r * 0.9, measure=moved_tokens,
                 why="moved fraction below rate * (1 - keep_ratio)")
          for u in ("token", "word") for r in (0.15, 0.5)],
    ],
    "sentence_permute": [Expect({"rate": r}, r, 0.1, measure=rows_permuted,
                                why="rate is the fraction of rows (with >= 2 sentences) that are permuted")
                         for r in (0.3, 0.7, 1.0)],
    "mask": [Expect({"rate": r}, r, 0.1, why="pick units at rate; target_mask marks every picked token")
             for r in (0.05, 0.15, 0.4)],
    "delete": [Expect({"rate": r}, r, 0.1, why="drop units picked at rate") for r in (0.05, 0.15, 0.4)],
    "infill": [Expect({"rate": r, "poisson_lambda": lam}, _infill_expected(r, lam, N), 0.1,
                      why="spans covering about rate of the units (overlaps merge: made exact)")
               for r, lam in ((0.05, 3.0), (0.15, 3.0), (0.4, 3.0), (0.15, 1.0))],
}
RATE_CASES = [(name, i) for name in sorted(RATE_EXPECTATIONS) if name in POLICIES
              for i in range(len(RATE_EXPECTATIONS[name]))]


def test_every_documented_expectation_names_a_registered_policy():
    """An expectation for a policy that is not registered would silently never run."""
    assert set(RATE_EXPECTATIONS) <= set(POLICIES), sorted(set(RATE_EXPECTATIONS) - set(POLICIES))


@pytest.mark.parametrize("name,index", RATE_CASES,
                         ids=[f"{n}-{RATE_EXPECTATIONS[n][i].params}" for n, i in RATE_CASES])
def test_acted_on_fraction_matches_docstring(name, index, big_batch):
    expect = RATE_EXPECTATIONS[name][index]
    params = dict(expect.params)
    unit = params.pop("unit", measurement_unit(name))
    measured = expect.measure(make_policy(name, unit, **params), big_batch)
    if expect.about is not None:
        assert math.isclose(measured, expect.about, rel_tol=expect.rel, abs_tol=0.005), \
            f"{name} {expect.params}: measured {measured:.4f}, docstring says {expect.why!r}: {expect.about:.4f}"
    if expect.at_most is not None:
        assert measured <= expect.at_most, \
            f"{name} {expect.params} unit={unit}: measured {measured:.4f}, docstring says {expect.why!r}: <= {expect.at_most:.4f}"
