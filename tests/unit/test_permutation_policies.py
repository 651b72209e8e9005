"""adjacent_swap, ngram_permute, shuffle_replace, ngram_shuffle, sentence_permute
(shiftlab/shifts/permutations.py): the policy contract for every supported unit, then what each
policy promises on its own."""

from __future__ import annotations

import functools

import pytest
import torch

from shiftlab.shifts import POLICIES, build_policy, parse_unit, rng
from shiftlab.shifts.units import build_units

PAD, CLS, SEP = 0, 1, 2
# (case id, policy name, parameters); rates high enough that short rows move.
CASES = [
    ("adjacent_swap", "adjacent_swap", {"rate": 0.3}),
    ("ngram_permute", "ngram_permute", {"rate": 0.5}),  # equal-length exchange moves little in short rows
    ("ngram_permute_mixed", "ngram_permute", {"rate": 0.3, "mix_lengths": True}),
    ("shuffle_replace", "shuffle_replace", {"rate": 0.3}),
    ("ngram_shuffle", "ngram_shuffle", {"n": 2}),
    ("sentence_permute", "sentence_permute", {}),
]
CONCRETE_UNITS = {"token": "token", "char": "char", "word": "word", "ngram": "ngram2", "sentence": "sentence"}
CASE_UNITS = [
    (case, name, params, CONCRETE_UNITS[kind])
    for case, name, params in CASES
    for kind in POLICIES[name].SUPPORTED_UNITS
]


def make_batch(batch=16, max_len=24, seed=0):
    """[CLS] content [SEP] pad..., random lengths; words of 1-3 sub-words, sentences of whole
    words (a word starts a new sentence with probability 0.3); content ids unique per row."""
    return tuple(t.clone() for t in _make_batch(batch, max_len, seed))


@functools.lru_cache(maxsize=None)
def _make_batch(batch, max_len, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len - 1, (batch,), generator=g)
    ids = torch.full((batch, max_len), PAD)
    special = torch.ones(batch, max_len, dtype=torch.bool)
    word_ids = torch.full((batch, max_len), -1)
    sentence_ids = torch.full((batch, max_len), -1)
    for b, n in enumerate(lengths.tolist()):
        ids[b, 0] = CLS
        ids[b, 1 : n + 1] = 10 + torch.randperm(500, generator=g)[:n]
        ids[b, n + 1] = SEP
        special[b, 1 : n + 1] = False
        pieces = torch.randint(1, 4, (n,), generator=g)
        words = torch.repeat_interleave(torch.arange(n), pieces)[:n]
        word_ids[b, 1 : n + 1] = words
        new_sentence = torch.rand(n, generator=g) < 0.3
        new_sentence[:1] = False
        sentence_of_word = torch.cumsum(new_sentence.long(), 0)
        sentence_ids[b, 1 : n + 1] = sentence_of_word[words]
    return ids, special, word_ids, sentence_ids


def _long_batch(batch=400, length=60):
    """Every row full: [CLS] length-2 one-token words [SEP]."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(10, 1000, (batch, length), generator=g)
    special = torch.zeros(batch, length, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    word_ids = torch.arange(length).expand(batch, length).clone()
    word_ids[special] = -1
    return ids, special, word_ids


def run(policy, ids, special, word_ids, sentence_ids=None, sample_ids=None, seed=0, epoch=0, view=0):
    if sample_ids is None:
        sample_ids = torch.arange(ids.shape[0])
    return policy(ids, special_mask=special, sample_ids=sample_ids, seed=seed, epoch=epoch, view=view,
                  word_ids=word_ids, sentence_ids=sentence_ids)


def unit_groups(unit, word_ids, sentence_ids):
    """The id of each token's unit (-1 for specials/padding): what must move as one block."""
    kind, n = parse_unit(unit)
    if kind == "sentence":
        return sentence_ids
    if kind == "ngram":
        return torch.where(word_ids >= 0, word_ids // n, -1)
    return word_ids


@pytest.fixture(params=CASE_UNITS, ids=lambda p: f"{p[0]}-{p[3]}")
def case(request):
    case_id, name, params, unit = request.param
    return build_policy(name, unit=unit, **params), unit


def test_new_policies_are_registered():
    assert {name for _, name, _ in CASES} <= set(POLICIES)
    assert POLICIES["sentence_permute"].SUPPORTED_UNITS == ("sentence",)


def test_source_index_contract(case):
    policy, _ = case
    ids, special, word_ids, sentence_ids = make_batch()
    out = run(policy, ids, special, word_ids, sentence_ids)
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    assert out.input_ids.shape == out.source_index.shape == out.moved_mask.shape == ids.shape
    assert torch.equal(out.input_ids, torch.gather(ids, 1, out.source_index))
    assert torch.equal(out.source_index.sort(dim=1).values, positions)  # a permutation of each row
    assert torch.equal(out.moved_mask, out.source_index != positions)
    assert torch.equal(out.source_index[special], positions[special])  # specials and padding stay
    assert torch.equal(out.input_ids[special], ids[special])
    assert torch.equal(out.input_ids.sort(dim=1).values, ids.sort(dim=1).values)  # same multiset of tokens
    assert out.moved_mask.any()


def test_unit_permutation_contract(case):
    # What base.py asks of unit_permutation, checked before units.py turns it into positions
    # (which would hide a non-identity tail).
    policy, unit = case
    ids, special, word_ids, sentence_ids = make_batch(batch=64, max_len=40, seed=2)
    units = build_units(special, unit, word_ids, sentence_ids)
    perm = policy.unit_permutation(units, rng.row_keys(0, 0, torch.arange(64), 0))
    k = torch.arange(perm.shape[1]).expand_as(perm)
    assert perm.shape == units.unit_len.shape
    assert torch.equal(perm.sort(dim=1).values, k)
    tail = k >= units.n_units.unsqueeze(1)
    assert torch.equal(perm[tail], k[tail])
    assert (perm != k).any()


MULTI_TOKEN_UNITS = [c for c in CASE_UNITS if c[3] not in ("token", "char")]  # single positions


@pytest.mark.parametrize("case_params", MULTI_TOKEN_UNITS, ids=lambda p: f"{p[0]}-{p[3]}")
def test_units_move_whole_and_in_order(case_params):
    case_id, name, params, unit = case_params
    policy = build_policy(name, unit=unit, **params)
    ids, special, word_ids, sentence_ids = make_batch(batch=32, seed=3)
    out = run(policy, ids, special, word_ids, sentence_ids)
    groups = unit_groups(unit, word_ids, sentence_ids)
    moved_groups = torch.gather(groups, 1, out.source_index)
    assert out.moved_mask.any()
    for b in range(ids.shape[0]):
        src = out.source_index[b][~special[b]].tolist()
        row = moved_groups[b][~special[b]].tolist()
        for j in range(1, len(src)):
            if row[j] == row[j - 1]:
                assert src[j] == src[j - 1] + 1  # the pieces of a unit stay adjacent, in order
        runs = [w for j, w in enumerate(row) if j == 0 or w != row[j - 1]]
        assert len(runs) == len(set(runs))  # each unit is one contiguous run


def test_deterministic_per_key(case):
    policy, _ = case
    ids, special, word_ids, sentence_ids = make_batch()
    first = run(policy, ids, special, word_ids, sentence_ids, seed=5, epoch=2, view=1)
    again = run(policy, ids.clone(), special.clone(), word_ids.clone(), sentence_ids.clone(), seed=5, epoch=2, view=1)
    assert torch.equal(first.source_index, again.source_index)


def test_invariant_to_batch_composition_and_row_order(case):
    policy, _ = case
    ids, special, word_ids, sentence_ids = make_batch(batch=16, max_len=24)
    sample_ids = torch.arange(100, 116)
    full = run(policy, ids, special, word_ids, sentence_ids, sample_ids=sample_ids)
    order = torch.arange(15, -1, -1)
    rev = run(policy, ids[order], special[order], word_ids[order], sentence_ids[order], sample_ids=sample_ids[order])
    assert torch.equal(rev.source_index, full.source_index[order])
    # A subset of the rows in a batch of their own, padded much wider.
    rows, wide = torch.tensor([1, 4, 5, 9, 12]), 57

    def pad(t, v):
        return torch.cat([t[rows], torch.full((len(rows), wide - t.shape[1]), v, dtype=t.dtype)], dim=1)

    part = run(policy, pad(ids, PAD), pad(special, True), pad(word_ids, -1), pad(sentence_ids, -1),
               sample_ids=sample_ids[rows])
    assert torch.equal(part.source_index[:, :24], full.source_index[rows])
    assert torch.equal(part.source_index[:, 24:], torch.arange(24, wide).expand(len(rows), -1))


def test_other_epochs_views_seeds_and_samples_differ(case):
    policy, _ = case
    ids, special, word_ids, sentence_ids = make_batch(batch=64, max_len=32, seed=1)
    base = run(policy, ids, special, word_ids, sentence_ids).source_index
    for change in ({"epoch": 1}, {"view": 1}, {"seed": 1}, {"sample_ids": torch.arange(64) + 64}):
        assert not torch.equal(base, run(policy, ids, special, word_ids, sentence_ids, **change).source_index), change


def test_rows_too_short_come_back_unchanged(case):
    policy, unit = case
    kind, _ = parse_unit(unit)
    # Row 0: no content. Row 1: one token. Row 2: three tokens that form a single unit of this kind
    # (skipped for token units, where they are three units).
    ids = torch.tensor([[CLS, SEP, PAD, PAD, PAD], [CLS, 11, SEP, PAD, PAD], [CLS, 11, 12, 13, SEP]])
    special = torch.tensor([[True, True, True, True, True], [True, False, True, True, True],
                            [True, False, False, False, True]])
    word_ids = torch.tensor([[-1] * 5, [-1, 0, -1, -1, -1], [-1, 0, 0, 1 if kind == "ngram" else 0, -1]])
    sentence_ids = torch.tensor([[-1] * 5, [-1, 0, -1, -1, -1], [-1, 0, 0, 0, -1]])
    if kind == "token":
        ids, special, word_ids, sentence_ids = ids[:2], special[:2], word_ids[:2], sentence_ids[:2]
    out = run(policy, ids, special, word_ids, sentence_ids)
    assert torch.equal(out.input_ids, ids)
    assert not out.moved_mask.any()


@pytest.mark.parametrize("name,params,bad", [
    ("adjacent_swap", {"rate": 1.5}, "adjacent_swap: rate"),
    ("adjacent_swap", {"rate": -0.1}, "adjacent_swap: rate"),
    ("ngram_permute", {"rate": 2.0}, "ngram_permute: rate"),
    ("ngram_permute", {"max_n": 0}, "ngram_permute: max_n"),
    ("ngram_permute", {"max_n": 3}, "ngram_permute: ngram_probs"),
    ("ngram_permute", {"ngram_probs": (0.5, -0.1, 0.3, 0.3)}, "ngram_permute: ngram_probs"),
    ("ngram_permute", {"ngram_probs": (0.0, 0.0, 0.0, 0.0)}, "ngram_permute: ngram_probs"),
    ("ngram_permute", {"keep_ratio": 1.1}, "ngram_permute: keep_ratio"),
    ("ngram_permute", {"mix_lengths": "yes"}, "ngram_permute: mix_lengths"),
    ("ngram_permute", {"unit": "sentence"}, "'ngram_permute' does not support unit"),
    ("ngram_permute", {"unit": "ngram2"}, "'ngram_permute' does not support unit"),
    ("shuffle_replace", {"rate": 1.01}, "shuffle_replace: rate"),
    ("ngram_shuffle", {"n": 0}, "ngram_shuffle: n"),
    ("ngram_shuffle", {"n": 2.5}, "ngram_shuffle: n"),
    ("ngram_shuffle", {"unit": "sentence"}, "'ngram_shuffle' does not support unit"),
    ("sentence_permute", {"rate": 1.2}, "sentence_permute: rate"),
    ("sentence_permute", {"unit": "word"}, "'sentence_permute' does not support unit"),
])
def test_bad_parameters_name_policy_and_parameter(name, params, bad):
    with pytest.raises(ValueError, match=bad):
        build_policy(name, **params)


def test_units_need_their_ids():
    ids, special, _, _ = make_batch()
    with pytest.raises(ValueError, match="sentence_ids"):
        run(build_policy("sentence_permute"), ids, special, None, None)
    with pytest.raises(ValueError, match="word_ids"):
        run(build_policy("ngram_shuffle"), ids, special, None, None)


@pytest.mark.parametrize("name", ["adjacent_swap", "ngram_permute", "shuffle_replace", "sentence_permute"])
def test_rate_zero_moves_nothing(name):
    ids, special, word_ids, sentence_ids = make_batch(batch=32, seed=4)
    out = run(build_policy(name, rate=0.0), ids, special, word_ids, sentence_ids)
    assert not out.moved_mask.any()


# adjacent_swap ---------------------------------------------------------------------------------

def test_adjacent_swap_only_swaps_neighbours():
    ids, special, word_ids = _long_batch(batch=100)
    out = run(build_policy("adjacent_swap", rate=0.5), ids, special, word_ids)
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    assert (out.source_index - positions).abs().max().item() == 1
    # Disjoint transpositions: the permutation is its own inverse.
    assert torch.equal(torch.gather(out.source_index, 1, out.source_index), positions)


def test_adjacent_swap_words_swap_with_neighbouring_words():
    ids, special, word_ids, _ = make_batch(batch=32, seed=5)
    out = run(build_policy("adjacent_swap", rate=0.5, unit="word"), ids, special, word_ids)
    assert out.moved_mask.any()
    moved_words = torch.gather(word_ids, 1, out.source_index)
    for b in range(ids.shape[0]):
        row = moved_words[b][~special[b]].tolist()
        order = [w for j, w in enumerate(row) if j == 0 or w != row[j - 1]]
        # The word order differs from 0, 1, 2, ... by swaps of neighbours.
        k = 0
        while k < len(order):
            if order[k] == k:
                k += 1
            else:
                assert order[k : k + 2] == [k + 1, k]
                k += 2


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.5])
def test_adjacent_swap_moved_fraction_near_rate(rate):
    ids, special, word_ids = _long_batch()
    out = run(build_policy("adjacent_swap", rate=rate), ids, special, word_ids)
    measured = out.moved_mask[~special].float().mean().item()
    assert abs(measured - rate) < 0.1 * rate + 0.005, measured
    # No position is always the left member of a pair: both phases occur.
    first_moved = out.moved_mask[:, 1]
    second_with_third = out.source_index[:, 2] == 3
    assert first_moved.any() and second_with_third.any()


# ngram_permute ---------------------------------------------------------------------------------

def _moved_fraction(policy, length=130, batch=300):
    ids, special, word_ids = _long_batch(batch=batch, length=length)
    return run(policy, ids, special, word_ids).moved_mask[~special].float().mean().item()


def test_ngram_permute_moved_fraction_near_its_expected_value():
    # The selected fraction is rate; (1 - keep_ratio) of it is permuted; a span alone in its
    # length stays put, which costs ~16 % at 128 units and ~1 % at 512 (see the docstring; an
    # independent simulation of the documented scheme gives 0.837x and 0.994x).
    rate, keep = 0.15, 0.1
    expected = rate * (1 - keep)
    at_128 = _moved_fraction(build_policy("ngram_permute", rate=rate, keep_ratio=keep, unit="token"), length=130)
    at_512 = _moved_fraction(build_policy("ngram_permute", rate=rate, keep_ratio=keep, unit="token"), length=514,
                             batch=100)
    assert 0.75 * expected < at_128 < 0.93 * expected, at_128
    assert 0.93 * expected < at_512 < 1.03 * expected, at_512


def test_ngram_permute_keeps_a_share_of_selected_spans_in_place():
    fractions = [_moved_fraction(build_policy("ngram_permute", rate=0.3, keep_ratio=keep, unit="token"))
                 for keep in (0.0, 0.1, 0.5, 1.0)]
    none_kept, default, half, all_kept = fractions
    assert all_kept == 0.0
    assert none_kept > default > half > 0.0
    # Kept spans are a share of the selected ones: moved scales with (1 - keep_ratio).
    assert abs(default / none_kept - 0.9) < 0.05, (default, none_kept)
    assert abs(half / none_kept - 0.5) < 0.07, (half, none_kept)


def test_ngram_permute_moves_contiguous_ngrams_onto_same_length_slots():
    # Only 3-grams: spans start every 3 units from the first, so a moved span is an aligned
    # triple that lands whole, in order, on another aligned triple.
    ids, special, word_ids = _long_batch(batch=200, length=62)
    policy = build_policy("ngram_permute", rate=0.3, unit="token", max_n=3, ngram_probs=(0, 0, 1))
    out = run(policy, ids, special, word_ids)
    src = out.source_index[:, 1:61] - 1  # content index -> content index, 60 units = 20 triples
    triples = src.reshape(200, 20, 3)
    assert (triples[:, :, 0] % 3 == 0).all()
    assert torch.equal(triples[:, :, 1:], triples[:, :, :1] + torch.tensor([1, 2]))
    moved = (triples[:, :, 0] != torch.arange(0, 60, 3)).float().mean().item()
    assert abs(moved - 0.3 * 0.9) < 0.05, moved


def _reference_spans(policy, keys, n_units):
    """The documented PERT selection, spelled out one row at a time: ``(start, length, selected,
    kept)`` for each span of the row, from the policy's keyed draw (stream 22: the high 16 bits
    give span lengths; the low 16 bits: selected if u < rate, kept if u < rate * keep_ratio)."""
    bounds = torch.tensor(policy.ngram_probs, dtype=torch.float64).cumsum(0)[:-1].to(torch.float32).tolist()
    hashed = rng.hash32(keys, 22, n_units)[0]
    lengths = ((hashed >> 16).float() / 65536.0).tolist()
    draw = (hashed & 0xFFFF).float() / 65536.0
    picks, keeps = (draw < policy.rate).tolist(), (draw < policy.rate * policy.keep_ratio).tolist()
    spans, start, j = [], 0, 0
    while start < n_units:
        length = min(1 + sum(lengths[j] >= c for c in bounds), n_units - start)
        spans.append((start, length, picks[j], keeps[j]))
        start, j = start + length, j + 1
    return spans


def test_ngram_permute_moves_selected_spans_onto_same_length_slots_and_keeps_the_rest():
    ids, special, word_ids = _long_batch(batch=60, length=130)
    policy = build_policy("ngram_permute", rate=0.3, unit="token")
    out = run(policy, ids, special, word_ids, seed=3)
    keys = rng.row_keys(3, 0, torch.arange(60), 0)
    content = out.source_index[:, 1:-1] - 1  # content index -> content index
    kept_spans = selected_units = 0
    lengths_seen = set()
    for b in range(60):
        row = content[b].tolist()
        spans = _reference_spans(policy, keys[b : b + 1], 128)
        permuted = {(s, n) for s, n, selected, kept in spans if selected and not kept}
        by_length = {}
        for s, n in permuted:
            by_length.setdefault(n, set()).add(s)
        for s, n, selected, kept in spans:
            here = row[s : s + n]
            selected_units += n * selected
            if (s, n) not in permuted:
                assert here == list(range(s, s + n))  # unselected and kept spans stay in place
                kept_spans += kept
                continue
            # A permuted span's slot receives a whole span of the same length, in order ...
            assert here == list(range(here[0], here[0] + n)) and here[0] in by_length[n]
            # ... never itself, unless it is the only permuted span of that length.
            assert (here[0] != s) == (len(by_length[n]) > 1)
            lengths_seen.add(n)
    assert kept_spans > 0
    assert lengths_seen == {1, 2, 3, 4}
    assert abs(selected_units / (60 * 128) - 0.3) < 0.04


def test_ngram_permute_word_spans_only_take_slots_of_as_many_sub_words():
    # Word units: spans are n-grams of words, but a span may only take the slot of a span with
    # the same number of *tokens*, so no unselected or kept token ever shifts.
    batch, length = 60, 130
    ids, special, _ = _long_batch(batch=batch, length=length)
    g = torch.Generator().manual_seed(11)
    pieces = torch.randint(1, 4, (batch, length), generator=g)
    word_ids = torch.full((batch, length), -1)
    for b in range(batch):
        word_ids[b, 1:-1] = torch.repeat_interleave(torch.arange(length), pieces[b])[: length - 2]
    policy = build_policy("ngram_permute", rate=0.3)
    assert policy.unit == "word"
    out = run(policy, ids, special, word_ids, seed=4)
    keys = rng.row_keys(4, 0, torch.arange(batch), 0)
    moved_spans = kept_spans = 0
    for b in range(batch):
        words = word_ids[b].tolist()
        first = {w: words.index(w) for w in set(words) if w >= 0}
        n_words = max(words) + 1
        bounds = [first[w] for w in range(n_words)] + [length - 1]  # token start of each word, then [SEP]
        spans = [(bounds[s], bounds[s + n] - bounds[s], sel and not kept, kept)
                 for s, n, sel, kept in _reference_spans(policy, keys[b : b + 1], n_words)]
        starts_by_tokens = {}
        for start, tokens, permuted, _ in spans:
            if permuted:
                starts_by_tokens.setdefault(tokens, set()).add(start)
        src = out.source_index[b].tolist()
        for start, tokens, permuted, kept in spans:
            here = src[start : start + tokens]
            if not permuted:
                assert here == list(range(start, start + tokens))
                kept_spans += kept
                continue
            assert here == list(range(here[0], here[0] + tokens)) and here[0] in starts_by_tokens[tokens]
            assert (here[0] != start) == (len(starts_by_tokens[tokens]) > 1)
            moved_spans += here[0] != start
    assert moved_spans > 50 and kept_spans > 0


def test_ngram_permute_mixed_lengths_exchange_spans_of_different_lengths():
    ids, special, word_ids = _long_batch(batch=50, length=130)
    out = run(build_policy("ngram_permute", rate=0.15, unit="token", mix_lengths=True), ids, special, word_ids)
    # Units between exchanged spans of different lengths shift: the moved fraction far exceeds the rate.
    assert out.moved_mask[~special].float().mean().item() > 0.3
    same = run(build_policy("ngram_permute", rate=0.15, unit="token"), ids, special, word_ids)
    assert same.moved_mask[~special].float().mean().item() < 0.15


# shuffle_replace -------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.05, 0.15, 0.4])
def test_shuffle_replace_moved_fraction_near_rate(rate):
    ids, special, word_ids = _long_batch()
    out = run(build_policy("shuffle_replace", rate=rate), ids, special, word_ids)
    measured = out.moved_mask[~special].float().mean().item()
    assert abs(measured - rate) < 0.1 * rate + 0.005, measured


def test_shuffle_replace_moves_picked_units_in_one_cycle():
    ids, special, word_ids = _long_batch(batch=100)
    out = run(build_policy("shuffle_replace", rate=0.2), ids, special, word_ids)
    for b in range(ids.shape[0]):
        src = out.source_index[b].tolist()
        moved = [j for j, s in enumerate(src) if s != j]
        assert len(moved) != 1
        if not moved:
            continue
        # Moved tokens only come from, and land on, the picked (moved) positions, along one cycle.
        cycle, j = [], moved[0]
        while True:
            cycle.append(j)
            j = src[j]
            if j == moved[0]:
                break
        assert sorted(cycle) == moved


def test_shuffle_replace_cycle_order_is_random():
    # Not just "each picked unit takes the next picked one's place": that would be learnable.
    ids, special, word_ids = _long_batch(batch=200)
    out = run(build_policy("shuffle_replace", rate=0.2), ids, special, word_ids)
    in_position_order = rows = 0
    for b in range(ids.shape[0]):
        src = out.source_index[b].tolist()
        moved = [j for j, s in enumerate(src) if s != j]
        if len(moved) >= 4:
            rows += 1
            in_position_order += all(src[j] in (moved[i - 1], moved[(i + 1) % len(moved)]) for i, j in enumerate(moved))
    assert rows > 150 and in_position_order < 0.05 * rows


def test_shuffle_replace_picks_every_position_alike():
    ids, special, word_ids = _long_batch(batch=2000, length=12)
    out = run(build_policy("shuffle_replace", rate=0.3), ids, special, word_ids)
    per_position = out.moved_mask[:, 1:-1].float().mean(dim=0)
    assert (per_position - per_position.mean()).abs().max().item() < 0.05, per_position


# ngram_shuffle ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ngram_shuffle_keeps_blocks_contiguous_and_in_order(n):
    ids, special, word_ids = _long_batch(batch=100, length=25)  # 23 units: the last block is short
    out = run(build_policy("ngram_shuffle", n=n, unit="token"), ids, special, word_ids)
    content = out.source_index[:, 1:-1] - 1
    blocks = -(-23 // n)
    for b in range(ids.shape[0]):
        row = content[b].tolist()
        runs, j = [], 0
        while j < len(row):
            assert row[j] % n == 0  # a block starts at its first unit ...
            length = min(n, 23 - row[j])
            assert row[j : j + length] == list(range(row[j], row[j] + length))  # ... and stays whole, in order
            runs.append(row[j] // n)
            j += length
        assert sorted(runs) == list(range(blocks))
    assert out.moved_mask.float().mean(dim=1).gt(0).float().mean() > 0.9


def test_ngram_shuffle_of_words_shuffles_word_blocks():
    ids, special, word_ids, _ = make_batch(batch=32, seed=6)
    out = run(build_policy("ngram_shuffle", n=2, unit="word"), ids, special, word_ids)
    moved_words = torch.gather(word_ids, 1, out.source_index)
    for b in range(ids.shape[0]):
        row = moved_words[b][~special[b]].tolist()
        order = [w for j, w in enumerate(row) if j == 0 or w != row[j - 1]]
        for k in range(len(order)):
            if order[k] % 2 == 1:  # the second word of a block follows the first
                assert k > 0 and order[k - 1] == order[k] - 1


# sentence_permute ------------------------------------------------------------------------------

def test_sentence_permute_changes_every_row_with_two_sentences():
    ids, special, word_ids, sentence_ids = make_batch(batch=64, max_len=32, seed=8)
    out = run(build_policy("sentence_permute"), ids, special, word_ids, sentence_ids)
    sentences = torch.stack([(sentence_ids[b].max() + 1) for b in range(ids.shape[0])])
    changed = out.moved_mask.any(dim=1)
    assert (sentences >= 2).sum() > 20
    assert torch.equal(changed, sentences >= 2)
    # Sentences stay whole: the sentence id sequence is made of whole, contiguous sentences.
    moved_sentences = torch.gather(sentence_ids, 1, out.source_index)
    for b in range(ids.shape[0]):
        row = moved_sentences[b][~special[b]].tolist()
        runs = [s for j, s in enumerate(row) if j == 0 or s != row[j - 1]]
        assert sorted(runs) == list(range(len(runs)))


def test_sentence_permute_rate_is_the_share_of_rows_permuted():
    ids, special, word_ids, sentence_ids = make_batch(batch=400, max_len=40, seed=9)
    multi = sentence_ids.max(dim=1).values >= 1
    out = run(build_policy("sentence_permute", rate=0.5), ids, special, word_ids, sentence_ids)
    share = out.moved_mask.any(dim=1)[multi].float().mean().item()
    assert abs(share - 0.5) < 0.08, share
    assert not out.moved_mask[~multi].any()


def test_sentence_permute_with_two_sentences_swaps_them():
    ids = torch.arange(10, 16).unsqueeze(0).repeat(20, 1)
    special = torch.zeros(20, 6, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    sentence_ids = torch.tensor([-1, 0, 0, 1, 1, -1]).expand(20, 6)
    out = run(build_policy("sentence_permute"), ids, special, None, sentence_ids)
    assert torch.equal(out.source_index, torch.tensor([0, 3, 4, 1, 2, 5]).expand(20, 6))
