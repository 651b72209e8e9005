"""Tests for shiftlab.data.synthetic: determinism, well-formedness, and that the
order task really needs word order while the topic task does not."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest

from shiftlab.data import synthetic as syn
from shiftlab.data.synthetic import SyntheticExample, SyntheticLanguage

SMALL = dict(n_pretrain=50, n_train=200, n_val=50, n_test=100)


@pytest.fixture(scope="module")
def lang() -> SyntheticLanguage:
    """Default sizes, seed 0; splits are generated on first use and cached."""
    return SyntheticLanguage(seed=0)


def _all_splits(language: SyntheticLanguage) -> dict[str, list[SyntheticExample]]:
    return {name: language.split(name) for name in ("pretrain", "train", "val", "test")}


# --------------------------------------------------------------------------
# API, determinism, sizes, validation
# --------------------------------------------------------------------------

def test_example_text_and_label_sets():
    ex = SyntheticExample(("vera", "pays", "the", "bank"), ("B-PER", "O", "O", "O"),
                          "agent_person", "finance")
    assert ex.text == "vera pays the bank"
    assert SyntheticLanguage.TAGS == ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
    assert SyntheticLanguage.ORDER_LABELS == ("agent_person", "agent_org")
    assert SyntheticLanguage.TOPIC_LABELS == ("finance", "sport", "travel", "conflict")


def test_same_seed_gives_identical_splits():
    a, b = SyntheticLanguage(seed=7, **SMALL), SyntheticLanguage(seed=7, **SMALL)
    assert _all_splits(a) == _all_splits(b)


def test_different_seeds_differ():
    a, b = SyntheticLanguage(seed=1, **SMALL), SyntheticLanguage(seed=2, **SMALL)
    for name in ("pretrain", "train", "val", "test"):
        assert a.split(name) != b.split(name)


def test_splits_differ_from_each_other():
    splits = _all_splits(SyntheticLanguage(seed=0, **SMALL))
    texts = {name: [e.text for e in exs[:50]] for name, exs in splits.items()}
    assert len({tuple(t) for t in texts.values()}) == 4


def test_splits_are_independent_of_each_other_and_of_sizes():
    a = SyntheticLanguage(seed=5, n_pretrain=0, n_train=10, n_val=0, n_test=100)
    b = SyntheticLanguage(seed=5, n_pretrain=0, n_train=300, n_val=0, n_test=100)
    b.split("train")  # generating another split first must not matter
    assert a.split("test") == b.split("test")
    # A smaller split is a prefix of a larger one.
    assert b.split("train")[:10] == a.split("train")


def test_split_is_cached_and_caller_cannot_corrupt_it():
    language = SyntheticLanguage(seed=0, **SMALL)
    first = language.split("val")
    first.clear()
    assert len(language.split("val")) == SMALL["n_val"]
    assert language.split("val")[0] is language.split("val")[0]


def test_sizes(lang):
    assert {k: len(v) for k, v in _all_splits(lang).items()} == {
        "pretrain": 20000, "train": 4000, "val": 500, "test": 1000}
    empty = SyntheticLanguage(n_pretrain=0, n_train=0, n_val=0, n_test=0)
    assert all(empty.split(name) == [] for name in ("pretrain", "train", "val", "test"))


@pytest.mark.parametrize("arg", ["n_pretrain", "n_train", "n_val", "n_test"])
def test_negative_size_raises_naming_argument(arg):
    with pytest.raises(ValueError, match=arg):
        SyntheticLanguage(**{arg: -1})


def test_non_int_arguments_raise():
    with pytest.raises(TypeError, match="seed"):
        SyntheticLanguage(seed="0")
    with pytest.raises(TypeError, match="n_train"):
        SyntheticLanguage(n_train=10.0)


def test_unknown_split_names_valid_ones():
    with pytest.raises(ValueError) as info:
        SyntheticLanguage(**SMALL).split("dev")
    for name in ("pretrain", "train", "val", "test"):
        assert name in str(info.value)


# --------------------------------------------------------------------------
# Well-formedness
# --------------------------------------------------------------------------

def _entity_spans(tags):
    """(kind, start, end) for each IOB2 span."""
    spans, start = [], None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and not tag.startswith("I-"):
            spans.append((tags[start][2:], start, i))
            start = None
        if tag.startswith("B-"):
            start = i
    return spans


def test_tags_are_valid_iob2_and_aligned(lang):
    for ex in lang.split("train") + lang.split("test"):
        assert len(ex.tags) == len(ex.words)
        assert set(ex.tags) <= set(SyntheticLanguage.TAGS)
        for prev, tag in zip(("O",) + ex.tags, ex.tags):
            if tag.startswith("I-"):
                assert prev[2:] == tag[2:], ex


def test_entity_spans_are_names_from_the_lexicon(lang):
    locations = set(syn.LOCATIONS)
    person_words = set(syn.FIRST_NAMES + syn.LAST_NAMES)
    org_words = set(syn.ORG_HEADS + syn.ORG_MIDDLES + syn.ORG_SUFFIXES)
    name_words = person_words | org_words | {w for loc in locations for w in loc}
    for ex in lang.split("train"):
        for kind, start, end in _entity_spans(ex.tags):
            span = ex.words[start:end]
            if kind == "PER":
                assert 1 <= len(span) <= 2 and set(span) <= person_words
            elif kind == "ORG":
                assert 1 <= len(span) <= 3 and span[0] in syn.ORG_HEADS and set(span) <= org_words
            else:
                assert span in locations
        # Outside entity spans only the two ambiguous words may be name words:
        # "bank" (also a common noun) and "new" (also an adjective).
        outside = {w for w, t in zip(ex.words, ex.tags) if t == "O"}
        assert outside & name_words <= {"bank", "new"}, ex


def test_sentence_lengths(lang):
    lengths = [len(ex.words) for ex in lang.split("pretrain")]
    assert min(lengths) >= 6 and max(lengths) <= 20
    assert 8 <= sum(lengths) / len(lengths) <= 14


def test_vocabulary_is_sorted_deterministic_and_exact(lang):
    vocab = lang.vocabulary()
    assert vocab == sorted(set(vocab)) == SyntheticLanguage(seed=9).vocabulary()
    assert 150 <= len(vocab) <= 500
    used = {w for exs in _all_splits(lang).values() for ex in exs for w in ex.words}
    assert used <= set(vocab)
    assert set(vocab) - {w for ex in lang.split("pretrain") for w in ex.words} == set()
    assert all(w == w.lower() and " " not in w for w in vocab)


def _verb_form_sets():
    singular = {"is", "was"}
    plural = {"are", "were"}
    pasts = set()
    for verbs in syn.VERBS.values():
        for verb in verbs:
            singular.add(verb.third)
            plural.add(verb.base)
            pasts |= {verb.past, verb.participle}
    plural -= pasts  # "beat" is both a base and a past form
    return singular, plural, singular | plural | pasts | {"will"}


def test_subject_verb_agreement(lang):
    singular_forms, plural_forms, verb_words = _verb_form_sets()
    plural_nouns = {pl for _, pl in syn.PERSON_NOUNS + syn.ORG_NOUNS}
    checked = Counter()
    for ex in lang.split("pretrain"):
        i = next(i for i, w in enumerate(ex.words) if w in verb_words)
        subject_plural = ex.words[i - 1] in plural_nouns  # the subject's head noun
        verb = ex.words[i]
        if subject_plural:
            assert verb not in singular_forms, ex.text
        else:
            assert verb not in plural_forms, ex.text
        checked[(subject_plural, verb in singular_forms | plural_forms)] += 1
    # Both numbers occur with marked (agreeing) verb forms.
    assert checked[(True, True)] > 500 and checked[(False, True)] > 500


# --------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------

def test_labels_are_balanced():
    examples = SyntheticLanguage(seed=11, n_train=2000).split("train")
    for attr, labels in (("order_label", SyntheticLanguage.ORDER_LABELS),
                         ("topic_label", SyntheticLanguage.TOPIC_LABELS)):
        counts = Counter(getattr(ex, attr) for ex in examples)
        assert set(counts) == set(labels)
        k = len(labels)
        for label in labels:
            assert 0.6 / k <= counts[label] / len(examples) <= 1.4 / k, (attr, counts)


def test_both_voices_carry_both_order_labels(lang):
    counts = Counter((" by " in f" {ex.text} ", ex.order_label) for ex in lang.split("train"))
    assert len(counts) == 4 and min(counts.values()) > 700


def test_swapping_roles_keeps_the_words_and_flips_the_order_label():
    rng = random.Random(0)
    for _ in range(500):
        plan = syn.sample_plan(rng)
        ex, swapped = syn.realize(plan), syn.realize(syn.swap_roles(plan))
        assert Counter(ex.words) == Counter(swapped.words)
        assert ex.words != swapped.words
        assert ex.order_label != swapped.order_label
        assert ex.topic_label == swapped.topic_label
        assert {ex.order_label, swapped.order_label} == set(SyntheticLanguage.ORDER_LABELS)


def _agent_class_from_order(words) -> str:
    """The rule a reader of word order uses: the agent follows "by", else comes first."""
    person = set(syn.FIRST_NAMES + syn.LAST_NAMES) | {w for p in syn.PERSON_NOUNS for w in p}
    org = set(syn.ORG_HEADS) | {w for p in syn.ORG_NOUNS for w in p}
    start = words.index("by") + 1 if "by" in words else 0
    for w in words[start:]:
        if w in person:
            return "agent_person"
        if w in org:
            return "agent_org"
    raise AssertionError(words)


def test_order_label_is_determined_by_word_order(lang):
    for ex in lang.split("test"):
        assert _agent_class_from_order(ex.words) == ex.order_label


class _NaiveBayes:
    """Multinomial Naive Bayes over word counts, add-one smoothing."""

    def fit(self, docs, labels):
        self.vocab = {w for d in docs for w in d}
        self.labels = sorted(set(labels))
        prior = Counter(labels)
        self.log_prior = {c: math.log(prior[c] / len(labels)) for c in self.labels}
        counts = {c: Counter() for c in self.labels}
        for doc, c in zip(docs, labels):
            counts[c].update(doc)
        self.log_p = defaultdict(dict)
        for c in self.labels:
            total = sum(counts[c].values()) + len(self.vocab)
            for w in self.vocab:
                self.log_p[c][w] = math.log((counts[c][w] + 1) / total)
        return self

    def predict(self, doc):
        return max(self.labels, key=lambda c: self.log_prior[c]
                   + sum(self.log_p[c].get(w, 0.0) for w in doc))

    def accuracy(self, docs, labels):
        return sum(self.predict(d) == y for d, y in zip(docs, labels)) / len(labels)


def test_bag_of_words_is_at_chance_on_order_but_solves_topic(lang):
    train, test = lang.split("train"), lang.split("test")
    train_docs, test_docs = [ex.words for ex in train], [ex.words for ex in test]
    results = {}
    for attr, _labels in (("order_label", SyntheticLanguage.ORDER_LABELS),
                         ("topic_label", SyntheticLanguage.TOPIC_LABELS)):
        nb = _NaiveBayes().fit(train_docs, [getattr(ex, attr) for ex in train])
        results[attr] = nb.accuracy(test_docs, [getattr(ex, attr) for ex in test])
    assert results["order_label"] < 1 / len(SyntheticLanguage.ORDER_LABELS) + 0.1, results
    assert results["topic_label"] > 0.9, results
