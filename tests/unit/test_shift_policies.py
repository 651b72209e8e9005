"""The policy contract (docs/shift_catalogue.md, B.1) for every policy and unit."""

from __future__ import annotations

import pytest
import torch

from shiftlab.shifts import POLICIES, build_policy

PAD, CLS, SEP = 0, 1, 2
CONFIGS = {
    "identity": {},
    "token_move": {"rate": 0.3, "max_distance": 3},
    "local_shuffle": {"window": 3, "rate": 0.3},
    "rotate": {},
    "global_shuffle": {},
}
UNITS = ["token", "word"]


def make_batch(batch=16, max_len=24, seed=0):
    """[CLS] content [SEP] pad..., random lengths; words of 1-3 sub-words; content ids unique per row."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len - 1, (batch,), generator=g)
    ids = torch.full((batch, max_len), PAD)
    special = torch.ones(batch, max_len, dtype=torch.bool)
    word_ids = torch.full((batch, max_len), -1)
    for b, n in enumerate(lengths.tolist()):
        ids[b, 0] = CLS
        ids[b, 1 : n + 1] = 10 + torch.randperm(500, generator=g)[:n]
        ids[b, n + 1] = SEP
        special[b, 1 : n + 1] = False
        pieces = torch.randint(1, 4, (n,), generator=g)
        word_ids[b, 1 : n + 1] = torch.repeat_interleave(torch.arange(n), pieces)[:n]
    return ids, special, word_ids


def run(policy, ids, special, word_ids, sample_ids=None, seed=0, epoch=0, view=0):
    if sample_ids is None:
        sample_ids = torch.arange(ids.shape[0])
    return policy(ids, special_mask=special, sample_ids=sample_ids, seed=seed, epoch=epoch, view=view, word_ids=word_ids)


@pytest.fixture(params=[(name, unit) for name in CONFIGS for unit in UNITS], ids=lambda p: f"{p[0]}-{p[1]}")
def policy(request):
    name, unit = request.param
    return build_policy(name, unit=unit, **CONFIGS[name])


def test_catalogue_of_this_issue_is_registered():
    assert set(CONFIGS) <= set(POLICIES)


def test_source_index_contract(policy):
    ids, special, word_ids = make_batch()
    out = run(policy, ids, special, word_ids)
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    assert out.input_ids.shape == out.source_index.shape == out.moved_mask.shape == ids.shape
    assert torch.equal(out.input_ids, torch.gather(ids, 1, out.source_index))
    assert torch.equal(out.source_index.sort(dim=1).values, positions)  # a permutation of each row
    assert torch.equal(out.moved_mask, out.source_index != positions)
    # Special tokens and padding never move.
    assert torch.equal(out.source_index[special], positions[special])
    assert torch.equal(out.input_ids[special], ids[special])


@pytest.mark.parametrize("name", CONFIGS)
def test_word_units_move_whole_words_in_order(name):
    policy = build_policy(name, unit="word", **{**CONFIGS[name], **({"rate": 0.6} if "rate" in CONFIGS[name] else {})})
    ids, special, word_ids = make_batch(batch=32, seed=3)
    out = run(policy, ids, special, word_ids)
    moved_words = torch.gather(word_ids, 1, out.source_index)
    for b in range(ids.shape[0]):
        row_src = out.source_index[b][~special[b]].tolist()
        row_words = moved_words[b][~special[b]].tolist()
        for j in range(1, len(row_src)):
            if row_words[j] == row_words[j - 1]:
                assert row_src[j] == row_src[j - 1] + 1  # pieces of a word stay adjacent, in order
        # each word appears as one contiguous run
        runs = [w for j, w in enumerate(row_words) if j == 0 or w != row_words[j - 1]]
        assert len(runs) == len(set(runs))


def test_deterministic_per_key(policy):
    ids, special, word_ids = make_batch()
    first = run(policy, ids, special, word_ids, seed=5, epoch=2, view=1)
    again = run(policy, ids.clone(), special.clone(), word_ids.clone(), seed=5, epoch=2, view=1)
    assert torch.equal(first.source_index, again.source_index)


def test_invariant_to_batch_composition_and_row_order(policy):
    ids, special, word_ids = make_batch(batch=16, max_len=24)
    sample_ids = torch.arange(100, 116)
    full = run(policy, ids, special, word_ids, sample_ids=sample_ids)
    # Reverse the rows, and put the first half in a batch of its own, padded wider.
    order = torch.arange(15, -1, -1)
    rev = run(policy, ids[order], special[order], word_ids[order], sample_ids=sample_ids[order])
    assert torch.equal(rev.source_index, full.source_index[order])
    wide = 40
    pad = lambda t, v: torch.cat([t[:8], torch.full((8, wide - t.shape[1]), v, dtype=t.dtype)], dim=1)  # noqa: E731
    half = run(policy, pad(ids, PAD), pad(special, True), pad(word_ids, -1), sample_ids=sample_ids[:8])
    assert torch.equal(half.source_index[:, :24], full.source_index[:8])


@pytest.mark.parametrize("name,unit", [(n, u) for n in CONFIGS if n != "identity" for u in UNITS])
def test_other_epochs_and_views_differ(name, unit):
    policy = build_policy(name, unit=unit, **CONFIGS[name])
    ids, special, word_ids = make_batch(batch=64, max_len=32, seed=1)
    base = run(policy, ids, special, word_ids).source_index
    assert not torch.equal(base, run(policy, ids, special, word_ids, epoch=1).source_index)
    assert not torch.equal(base, run(policy, ids, special, word_ids, view=1).source_index)
    assert not torch.equal(base, run(policy, ids, special, word_ids, seed=1).source_index)
    assert not torch.equal(base, run(policy, ids, special, word_ids, sample_ids=torch.arange(64) + 64).source_index)


def test_rows_too_short_come_back_unchanged(policy):
    ids = torch.tensor([[CLS, SEP, PAD, PAD], [CLS, 11, SEP, PAD]])
    special = torch.tensor([[True, True, True, True], [True, False, True, True]])
    word_ids = torch.tensor([[-1, -1, -1, -1], [-1, 0, -1, -1]])
    out = run(policy, ids, special, word_ids)
    assert torch.equal(out.input_ids, ids)
    assert not out.moved_mask.any()


def test_view_may_differ_per_row():
    policy = build_policy("global_shuffle")
    ids, special, word_ids = make_batch(batch=8, max_len=20, seed=2)
    both = run(policy, torch.cat([ids, ids]), torch.cat([special, special]), None,
               sample_ids=torch.cat([torch.arange(8), torch.arange(8)]), view=torch.tensor([0] * 8 + [1] * 8))
    assert torch.equal(both.source_index[:8], run(policy, ids, special, None, view=0).source_index)
    assert torch.equal(both.source_index[8:], run(policy, ids, special, None, view=1).source_index)


def _long_batch(batch=400, length=60):
    ids = torch.randint(10, 1000, (batch, length))
    special = torch.zeros(batch, length, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    word_ids = torch.arange(length).expand(batch, length).clone()
    return ids, special, word_ids


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.4])
def test_local_shuffle_moved_fraction_near_rate(rate):
    ids, special, word_ids = _long_batch()
    out = run(build_policy("local_shuffle", window=3, rate=rate), ids, special, word_ids)
    measured = out.moved_mask[~special].float().mean().item()
    assert abs(measured - rate) < 0.25 * rate + 0.01, measured


@pytest.mark.parametrize("rate,max_distance", [(0.05, 1), (0.1, 1), (0.05, 3)])
def test_token_move_moved_fraction_matches_rate(rate, max_distance):
    # A picked unit moving d places shifts |d| neighbours by one: |d| + 1 tokens move.
    # With few picks (collisions rare) the moved fraction is rate * (1 + E|d|).
    ids, special, word_ids = _long_batch()
    out = run(build_policy("token_move", rate=rate, max_distance=max_distance), ids, special, word_ids)
    measured = out.moved_mask[~special].float().mean().item()
    expected = rate * (1 + (max_distance + 1) / 2)
    assert abs(measured - expected) < 0.2 * expected, (measured, expected)


def test_token_move_offsets_within_max_distance():
    ids, special, word_ids = _long_batch(batch=50)
    out = run(build_policy("token_move", rate=0.02, max_distance=2), ids, special, word_ids)
    displacement = (out.source_index - torch.arange(ids.shape[1])).abs()
    assert displacement.max().item() <= 2
    assert out.moved_mask.any()


def test_rate_zero_moves_nothing_and_rate_one_moves():
    ids, special, word_ids = _long_batch(batch=20)
    for name in ("token_move", "local_shuffle"):
        assert not run(build_policy(name, rate=0.0), ids, special, word_ids).moved_mask.any()
        assert run(build_policy(name, rate=1.0), ids, special, word_ids).moved_mask[~special].float().mean() > 0.5


def test_rotate_is_never_identity_and_keeps_cyclic_order():
    ids, special, word_ids = _long_batch(batch=100, length=7)
    out = run(build_policy("rotate"), ids, special, word_ids)
    inner = out.source_index[:, 1:-1] - 1  # content positions 0..4
    assert (inner != torch.arange(5)).any(dim=1).all()
    assert ((inner[:, 1:] - inner[:, :-1]) % 5 == 1).all()


def test_global_shuffle_moves_almost_everything():
    ids, special, word_ids = _long_batch()
    out = run(build_policy("global_shuffle"), ids, special, word_ids)
    assert out.moved_mask[~special].float().mean().item() > 0.9


def test_unknown_policy_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid policies:.*token_move"):
        build_policy("tokn_move")


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="unknown parameter.*windw.*accepts: window, rate, unit"):
        build_policy("local_shuffle", windw=3)


def test_bad_parameters_fail():
    with pytest.raises(ValueError, match="rate"):
        build_policy("token_move", rate=1.5)
    with pytest.raises(ValueError, match="unit"):
        build_policy("rotate", unit="paragraph")
    ids, special, _ = make_batch()
    with pytest.raises(ValueError, match="word_ids"):
        run(build_policy("rotate", unit="word"), ids, special, None)


def test_ngram_and_sentence_units_group_words_and_sentences():
    ids = torch.arange(10, 20).unsqueeze(0)
    special = torch.zeros(1, 10, dtype=torch.bool)
    special[0, 0] = special[0, 9] = True
    word_ids = torch.tensor([[-1, 0, 0, 1, 2, 3, 3, 4, 5, -1]])
    sentence_ids = torch.tensor([[-1, 0, 0, 0, 0, 1, 1, 1, 1, -1]])
    bigrams = build_policy("rotate", unit="ngram2")(ids, special_mask=special, sample_ids=torch.tensor([0]), seed=0,
                                                   epoch=0, word_ids=word_ids)
    # bigram units: (w0 w1) = positions 1-3, (w2 w3) = 4-6, (w4 w5) = 7-8; rotated as blocks
    rows = bigrams.source_index[0, 1:9].tolist()
    assert rows in ([4, 5, 6, 7, 8, 1, 2, 3], [7, 8, 1, 2, 3, 4, 5, 6])
    sentences = build_policy("rotate", unit="sentence")(ids, special_mask=special, sample_ids=torch.tensor([0]), seed=0,
                                                        epoch=0, sentence_ids=sentence_ids)
    assert sentences.source_index[0].tolist() == [0, 5, 6, 7, 8, 1, 2, 3, 4, 9]
    with pytest.raises(ValueError, match="sentence_ids"):
        build_policy("rotate", unit="sentence")(ids, special_mask=special, sample_ids=torch.tensor([0]), seed=0, epoch=0)
