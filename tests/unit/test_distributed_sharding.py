"""Sharding across processes: every rank draws the same global order and takes every N-th sample,
so each global batch, and the shift of each of its samples, is the same whatever the number of
processes; training shares are padded to equal length, evaluation shares are not."""

from __future__ import annotations

import pytest

import shiftlab.data.datamodules as datamodules
from shiftlab.data import Framing, ShiftPretrainDataModule, SyntheticCorpus, build_word_tokenizer
from shiftlab.data.sampling import EpochIndexSampler
from shiftlab.distributed import World, processes_per_node
from shiftlab.shifts import build_policy


def shares(size, world, **kwargs):
    return [[i for _, i in EpochIndexSampler(size, rank=r, world_size=world, **kwargs)] for r in range(world)]


@pytest.mark.parametrize("size", [12, 13, 1])
def test_training_shares_partition_the_global_order_with_equal_lengths(size):
    whole = [i for _, i in EpochIndexSampler(size, shuffle=True, seed=3)]
    parts = shares(size, 2, shuffle=True, seed=3, even=True)
    assert len(parts[0]) == len(parts[1]) == -(-size // 2)
    interleaved = [index for pair in zip(*parts) for index in pair]
    assert interleaved[:size] == whole  # padded with the order's own beginning
    assert interleaved[size:] == whole[: len(interleaved) - size]


def test_evaluation_shares_are_not_padded():
    parts = shares(7, 3, shuffle=False, seed=0)
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert [len(EpochIndexSampler(7, shuffle=False, seed=0, rank=r, world_size=3)) for r in range(3)] == [3, 2, 2]


def test_resume_skip_counts_global_samples():
    sampler = EpochIndexSampler(10, shuffle=False, seed=0, rank=1, world_size=2, even=True)
    sampler.skip = 4
    assert [i for _, i in sampler] == [5, 7, 9]


def test_rank_out_of_range_is_refused():
    with pytest.raises(ValueError, match="rank"):
        EpochIndexSampler(4, shuffle=False, seed=0, rank=2, world_size=2)


@pytest.fixture(scope="module")
def data():
    corpus = SyntheticCorpus(seed=0, n_pretrain=200, n_train=40, n_val=20, n_test=20)
    tokenizer = build_word_tokenizer(corpus.vocabulary())
    return corpus, tokenizer


def pretrain_batches(data, monkeypatch, world: World, epoch: int = 1):
    corpus, tokenizer = data
    monkeypatch.setattr(datamodules, "current_world", lambda: world)
    policy = build_policy("token_move", rate=0.3, max_distance=2, unit="word")
    dm = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer), policy, seed=0,
                                 batch_size=8, max_length=32)
    dm.setup()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


def rows(batch):
    return {int(batch["sample_ids"][r]): batch["input_ids"][r, : int(batch["attention_mask"][r].sum())].tolist()
            for r in range(batch["input_ids"].shape[0])}


def test_each_global_batch_and_its_shifts_are_the_same_with_two_processes(data, monkeypatch):
    single = pretrain_batches(data, monkeypatch, World(0, 1))
    rank0 = pretrain_batches(data, monkeypatch, World(0, 2))
    rank1 = pretrain_batches(data, monkeypatch, World(1, 2))
    assert len(single) == len(rank0) == len(rank1) == 25  # 200 samples, global batch 8
    assert all(batch["input_ids"].shape[0] == 4 for batch in rank0 + rank1)  # 8 / 2 processes
    moved = 0
    for whole, a, b in zip(single, rank0, rank1):
        assert rows(whole) == {**rows(a), **rows(b)}
        assert not set(rows(a)) & set(rows(b))
        moved += int(whole["moved_mask"].sum())
    assert moved > 0  # the comparison covers shifted samples, not only identity rows


def test_a_batch_size_the_processes_cannot_share_is_refused(data, monkeypatch):
    corpus, tokenizer = data
    monkeypatch.setattr(datamodules, "current_world", lambda: World(0, 3))
    dm = ShiftPretrainDataModule(corpus, tokenizer, Framing.for_backbone("encoder", tokenizer),
                                 build_policy("identity"), seed=0, batch_size=8, max_length=32)
    dm.setup()
    with pytest.raises(ValueError, match="multiple of the number of processes, 3.*pretrain.batch_size"):
        dm.train_dataloader()


def test_processes_per_job_come_from_the_trainer_config():
    assert processes_per_node({"strategy": "ddp_find_unused_parameters_true", "devices": 2}) == 2
    assert processes_per_node({"strategy": "fsdp", "devices": 4}) == 4
    assert processes_per_node({"devices": 1}) == 1
    assert processes_per_node({"strategy": "auto", "devices": 2}) == 1
    with pytest.raises(ValueError, match="strategy=ddp"):
        processes_per_node({"strategy": "ddp_spawn", "devices": 2})
    with pytest.raises(ValueError, match="trainer.devices"):
        processes_per_node({"strategy": "ddp", "devices": "auto"})
