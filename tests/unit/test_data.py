"""Tokenisation, on-the-fly shifting in the data module, views, epochs and worker invariance."""

from __future__ import annotations

import pytest
import torch

from shiftlab.data import (
    Framing,
    ShiftPretrainDataModule,
    SyntheticCorpus,
    TaskDataModule,
    build_word_tokenizer,
    encode_words,
)
from shiftlab.data.sampling import EpochIndexSampler
from shiftlab.shifts import build_policy

SMALL = {"n_pretrain": 400, "n_train": 200, "n_val": 50, "n_test": 60}


@pytest.fixture(scope="module")
def corpus():
    return SyntheticCorpus(seed=0, **SMALL)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return build_word_tokenizer(corpus.vocabulary())


def pretrain_module(corpus, tokenizer, **overrides):
    kwargs = {"seed": 0, "batch_size": 16, "num_workers": 0, "max_length": 32, "views": 1, "dynamic": True}
    kwargs.update(overrides)
    policy = kwargs.pop("policy", build_policy("token_move", rate=0.3, max_distance=2, unit="word"))
    dm = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer), policy, **kwargs)
    dm.setup()
    return dm


def epoch_batches(dm, epoch, limit=None):
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does before each epoch
    batches = []
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        batches.append(batch)
    return batches


def by_sample(batches, key="input_ids"):
    """Map (sample id, view) -> that row's tokens (without padding)."""
    rows = {}
    for batch in batches:
        for r in range(batch["input_ids"].shape[0]):
            length = int(batch["attention_mask"][r].sum())
            rows[(int(batch["sample_ids"][r]), int(batch["views"][r]))] = batch[key][r, :length].tolist()
    return rows


def test_word_tokenizer_round_trip_and_word_ids(tokenizer, corpus):
    sentences = corpus.texts("val")[:5]
    framing = Framing.for_backbone("encoder", tokenizer)
    encoded = encode_words(tokenizer, sentences, framing, max_length=64)
    for words, ids, word_ids in zip(sentences, encoded.input_ids, encoded.word_ids):
        tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert tokens[1:-1] == words  # no unknown words: the vocabulary covers the grammar
        assert word_ids.tolist() == [-1] + list(range(len(words))) + [-1]
    decoder = encode_words(tokenizer, sentences, Framing.for_backbone("decoder", tokenizer), max_length=64)
    assert tokenizer.convert_ids_to_tokens(decoder.input_ids[0].tolist())[:1] == ["[BOS]"]


def test_truncation_keeps_framing_and_whole_words():
    tokenizer = build_word_tokenizer(["a", "b", "c", "d"])
    encoded = encode_words(tokenizer, [["a", "b", "c", "d"]], Framing.for_backbone("encoder", tokenizer), max_length=4)
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids[0].tolist()) == ["[CLS]", "a", "b", "[SEP]"]
    with pytest.raises(ValueError, match="max_length"):
        encode_words(tokenizer, [["a"]], Framing.for_backbone("encoder", tokenizer), max_length=2)


def test_batches_are_shifted_on_the_fly_with_dynamic_padding(corpus, tokenizer):
    dm = pretrain_module(corpus, tokenizer)
    batch = epoch_batches(dm, 0, limit=1)[0]
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == int(lengths.max())  # padded to the batch, not to max_length
    assert torch.equal(batch["input_ids"], torch.gather(batch["original_ids"], 1, batch["source_index"]))
    assert batch["moved_mask"].any()
    assert not batch["moved_mask"][batch["special_mask"]].any()
    pad = tokenizer.pad_token_id
    assert (batch["input_ids"][batch["attention_mask"] == 0] == pad).all()


def test_epochs_redraw_and_static_keeps_the_draw(corpus, tokenizer):
    dynamic = pretrain_module(corpus, tokenizer)
    e0, e1 = by_sample(epoch_batches(dynamic, 0)), by_sample(epoch_batches(dynamic, 1))
    assert e0.keys() == e1.keys()
    assert sum(e0[k] != e1[k] for k in e0) > len(e0) // 4
    static = pretrain_module(corpus, tokenizer, dynamic=False)
    s0, s1 = by_sample(epoch_batches(static, 0)), by_sample(epoch_batches(static, 1))
    assert s0 == s1 == e0


def test_views_give_distinct_shifts_of_the_same_sample(corpus, tokenizer):
    dm = pretrain_module(corpus, tokenizer, views=3, batch_size=8)
    batch = epoch_batches(dm, 0, limit=1)[0]
    assert batch["input_ids"].shape[0] == 24
    assert batch["views"][:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.equal(batch["original_ids"][0], batch["original_ids"][1])
    rows = by_sample([batch])
    different = sum(rows[(s, 0)] != rows[(s, 1)] for s in batch["sample_ids"].unique().tolist())
    assert different >= 4
    # view 0 of a 3-view batch is the same draw as the single-view batch
    single = by_sample(epoch_batches(pretrain_module(corpus, tokenizer, batch_size=8), 0, limit=1))
    assert all(single[(s, 0)] == rows[(s, 0)] for s, _ in single)


def test_same_shifts_whatever_the_workers_and_batch_size(corpus, tokenizer):
    reference = by_sample(epoch_batches(pretrain_module(corpus, tokenizer, batch_size=16), 2), "source_index")
    workers = by_sample(epoch_batches(pretrain_module(corpus, tokenizer, batch_size=7, num_workers=2), 2), "source_index")
    assert reference == workers


def test_sampler_order_is_a_function_of_seed_and_epoch():
    a = list(EpochIndexSampler(50, shuffle=True, seed=1))
    b = list(EpochIndexSampler(50, shuffle=True, seed=1))
    assert a == b and sorted(i for _, i in a) == list(range(50))
    later = EpochIndexSampler(50, shuffle=True, seed=1)
    later.set_epoch(3)
    stamped = list(later)
    assert {e for e, _ in stamped} == {3} and [i for _, i in stamped] != [i for _, i in a]
    pinned = EpochIndexSampler(5, shuffle=False, seed=0, fixed_epoch=0)
    pinned.set_epoch(7)
    assert list(pinned) == [(0, i) for i in range(5)]


def test_validation_shifts_do_not_change_between_epochs(corpus, tokenizer):
    dm = pretrain_module(corpus, tokenizer)
    first = by_sample(list(dm.val_dataloader()))
    dm.val_dataloader().sampler.set_epoch(5)
    assert by_sample(list(dm.val_dataloader())) == first


def test_task_data_classification_and_tagging(corpus, tokenizer):
    framing = Framing.for_backbone("encoder", tokenizer)
    cls = TaskDataModule(corpus, "order", tokenizer, framing, seed=0, batch_size=8)
    cls.setup()
    batch = next(iter(cls.train_dataloader()))
    assert batch["labels"].shape == (8,)
    assert set(batch["labels"].tolist()) <= set(range(len(cls.label_names)))
    tag = TaskDataModule(corpus, "entities", tokenizer, framing, seed=0, batch_size=8)
    tag.setup()
    batch = next(iter(tag.test_dataloader()))
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][:, 0] == -100).all()  # [CLS] carries no tag
    example = corpus.labelled("entities", "test")
    words, tags = example.words[0], example.labels[0]
    n = len(words)
    assert [tag.label_names[i] for i in batch["labels"][0, 1 : n + 1].tolist()] == tags
    assert len(tag.split_labels("test")) == sum(len(t) for t in example.labels)


def test_unknown_task_and_label_fail_clearly(corpus, tokenizer):
    framing = Framing.for_backbone("encoder", tokenizer)
    with pytest.raises(ValueError, match="order, topic, entities"):
        TaskDataModule(corpus, "sentiment", tokenizer, framing, seed=0)
    dm = TaskDataModule(corpus, "order", tokenizer, framing, seed=0)
    dm.label_names = ["agent_person"]  # as if the training split had only one label
    with pytest.raises(ValueError, match="agent_org"):
        dm.setup()


def test_packed_sentences_carry_sentence_ids_to_the_policy(corpus, tokenizer):
    dm = pretrain_module(corpus, tokenizer, sentences_per_sample=3, max_length=80,
                         policy=build_policy("rotate", unit="sentence"))
    assert len(dm.datasets["train"]) == len(corpus.texts("train")) // 3 + (len(corpus.texts("train")) % 3 > 0)
    batch = epoch_batches(dm, 0, limit=1)[0]
    first = corpus.texts("train")[0] + corpus.texts("train")[1] + corpus.texts("train")[2]
    # sample 0 is sentences 0-2 of the corpus; find its row
    row = (batch["sample_ids"] == 0).nonzero()
    if len(row):
        r = int(row[0])
        tokens = tokenizer.convert_ids_to_tokens(batch["original_ids"][r, 1 : 1 + len(first)].tolist())
        assert tokens == first
    # whole sentences moved: within each row, the shifted content is a rotation of the sentences
    for r in range(batch["input_ids"].shape[0]):
        length = int(batch["attention_mask"][r].sum())
        src = batch["source_index"][r, 1 : length - 1].tolist()
        breaks = sum(1 for a, b in zip(src, src[1:]) if b != a + 1)
        assert breaks <= 2  # a rotation of contiguous sentences has at most two seams
    assert batch["moved_mask"].any()


def test_length_changing_policy_batches_mark_the_freed_tail(corpus, tokenizer):
    from shiftlab.shifts import POLICIES

    assert "delete" in POLICIES
    dm = pretrain_module(corpus, tokenizer, policy=build_policy("delete", rate=0.3))
    batch = epoch_batches(dm, 0, limit=1)[0]
    shorter = batch["attention_mask"].sum(1) < batch["original_attention_mask"].sum(1)
    assert shorter.any()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    assert batch["special_mask"][batch["attention_mask"] == 0].all()
    ends = batch["attention_mask"].sum(1) - 1
    assert (batch["input_ids"][torch.arange(len(ends)), ends] == tokenizer.sep_token_id).all()  # [SEP] closed up


def test_char_tokenizer_and_char_units(corpus):
    from shiftlab.data.tokenization import build_char_tokenizer

    chars = build_char_tokenizer(corpus.vocabulary())
    words = corpus.texts("val")[0]
    encoded = encode_words(chars, [words], Framing.for_backbone("encoder", chars), max_length=400)
    tokens = chars.convert_ids_to_tokens(encoded.input_ids[0].tolist())
    assert "".join(tokens[1:-1]) == "".join(words)  # one token per character
    assert encoded.word_ids[0].tolist()[1 : 1 + len(words[0])] == [0] * len(words[0])
    dm = pretrain_module(corpus, chars, max_length=200, policy=build_policy("local_shuffle", rate=0.5, unit="char"))
    batch = epoch_batches(dm, 0, limit=1)[0]
    assert batch["moved_mask"].any()
    words_dm = pretrain_module(corpus, chars, max_length=200, policy=build_policy("rotate", unit="word"))
    batch = epoch_batches(words_dm, 0, limit=1)[0]
    moved_words = torch.gather(batch["word_ids"], 1, batch["source_index"])
    for r in range(batch["input_ids"].shape[0]):  # characters of a word stay together
        row = [w for w in moved_words[r].tolist() if w >= 0]
        runs = [w for j, w in enumerate(row) if j == 0 or w != row[j - 1]]
        assert len(runs) == len(set(runs))


def test_char_unit_needs_a_character_level_tokenizer(corpus, tokenizer):
    with pytest.raises(ValueError, match="data.tokenizer=char"):
        pretrain_module(corpus, tokenizer, policy=build_policy("token_move", unit="char"))
