"""LightningDataModules: tokenise once in ``setup``, shift on the fly in the collator.

Pretraining text goes through the corpus cache (:mod:`shiftlab.data.corpus_cache`): tokenised
once into Arrow rows on disk, read in constant memory, reused by later runs; downstream tasks are
small and are tokenised in memory."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from shiftlab.distributed import current_world
from shiftlab.shifts import ShiftPolicy, Vocab
from shiftlab.utils.cache import content_key

from .collate import EncodedDataset, LabelCollator, ShiftCollator, word_labels_to_tokens
from .corpus import Corpus, LabelledCorpus, require
from .corpus_cache import BuiltCorpus, CorpusRecipe, ensure_corpus
from .documents import DocumentSource, InMemoryDocuments
from .resumable import ResumableDataLoader
from .row_dataset import RowDataset
from .sampling import EpochIndexSampler
from .tokenization import Framing, encode_word_windows, encode_words, is_char_level


class _SplitsDataModule(L.LightningDataModule):
    """``pin_memory``: page-locked batches, so copies to a GPU run asynchronously;
    ``prefetch_factor``: batches each worker prepares ahead (with ``num_workers > 0``)."""

    def __init__(self, *, batch_size: int, num_workers: int, seed: int, eval_batch_size: int | None = None,
                 pin_memory: bool = False, prefetch_factor: int | None = None):
        super().__init__()
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.pin_memory = bool(pin_memory)
        self.prefetch_factor = None if prefetch_factor is None else int(prefetch_factor)
        self.datasets: dict[str, EncodedDataset | RowDataset] = {}

    def _loader(self, split: str, collate, *, train: bool, fixed_epoch: int | None = None) -> DataLoader:
        """One split's loader. Batch sizes are global: with N processes each loads 1/N of every batch."""
        dataset = self.datasets[split]
        world = current_world()
        batch_size = self.batch_size if train else self.eval_batch_size
        if batch_size % world.size:
            raise ValueError(f"the {'training' if train else 'evaluation'} batch size {batch_size} (global, across "
                             f"processes) must be a multiple of the number of processes, {world.size}: set the "
                             "stage's batch_size (pretrain.batch_size / finetune.batch_size) accordingly")
        sampler = EpochIndexSampler(len(dataset), shuffle=train, seed=self.seed, fixed_epoch=None if train else 0,
                                    rank=world.rank, world_size=world.size, even=train)
        if train and fixed_epoch is not None:
            sampler.fixed_epoch = fixed_epoch
        # Training loaders resume mid-epoch through Lightning's checkpoints (shiftlab.data.resumable).
        return (ResumableDataLoader if train else DataLoader)(
            dataset,
            batch_size=batch_size // world.size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            pin_memory=self.pin_memory,
            drop_last=False,
        )


class _TrainValTestDataModule(_SplitsDataModule):
    """Downstream tasks: train, val and test splits, all batched by ``self.collator``."""

    def train_dataloader(self):
        return self._loader("train", self.collator, train=True)

    def val_dataloader(self):
        return self._loader("val", self.collator, train=False)

    def test_dataloader(self):
        return self._loader("test", self.collator, train=False)


class ShiftPretrainDataModule(_SplitsDataModule):
    """Raw text for shift pretraining.

    The corpus's ``train`` and ``val`` text is tokenised once into framed rows
    (:func:`~shiftlab.data.corpus_cache.ensure_corpus`): under ``cache_dir`` (reused by every later
    run with the same data, tokenizer and framing), or in a temporary directory with
    ``cache_dir=None``; ``num_proc`` processes build it. ``packing=True`` fills rows of
    ``max_length`` with consecutive documents, cut between words (:mod:`shiftlab.data.packing`);
    otherwise each document is one row, cut after the last word that fits.

    ``views=K`` gives K shifted views of each sample per batch; ``dynamic=False`` keeps the
    draw of epoch 0 for every epoch (a static corpus of shifted text). ``sentences_per_sample=k``
    makes each document k consecutive sentences of an in-memory corpus, with sentence ids for
    ``unit=sentence``.
    """

    def __init__(self, corpus: Corpus, tokenizer, framing: Framing, policy: ShiftPolicy, *, seed: int,
                 batch_size: int = 32, num_workers: int = 0, max_length: int = 128, views: int = 1,
                 dynamic: bool = True, sentences_per_sample: int = 1, eval_batch_size: int | None = None,
                 packing: bool = False, cache_dir=None, num_proc: int | None = None, pin_memory: bool = False,
                 prefetch_factor: int | None = None):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, eval_batch_size=eval_batch_size,
                         pin_memory=pin_memory, prefetch_factor=prefetch_factor)
        self.corpus, self.tokenizer, self.framing, self.policy = corpus, tokenizer, framing, policy
        self.max_length, self.views, self.dynamic = int(max_length), int(views), bool(dynamic)
        if int(sentences_per_sample) < 1:
            raise ValueError(f"sentences_per_sample must be >= 1, got {sentences_per_sample}")
        self.sentences_per_sample = int(sentences_per_sample)
        self.packing, self.cache_dir, self.num_proc = bool(packing), cache_dir, num_proc
        self.built: BuiltCorpus | None = None
        self._recipe: CorpusRecipe | None = None
        _check_char_units(policy, tokenizer)
        if policy.NEEDS_VOCAB:
            policy.bind_vocab(Vocab(size=len(tokenizer), pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                                    special_ids=tuple(tokenizer.all_special_ids)))
        self.collator = ShiftCollator(policy, seed=seed, pad_id=tokenizer.pad_token_id, views=views)

    def recipe(self) -> CorpusRecipe:
        """What the rows are made from (the corpus cache's key comes from it)."""
        if self._recipe is None:
            self._recipe = CorpusRecipe(pretraining_sources(self.corpus, self.sentences_per_sample), self.tokenizer,
                                        self.framing, self.max_length, self.packing)
        return self._recipe

    def corpus_key(self) -> str:
        """The corpus cache key of this pretraining text (cheap: fingerprints, no tokenising)."""
        return content_key(self.recipe().key_inputs())

    def setup(self, stage: str | None = None) -> None:
        if self.built is not None:
            return
        self.built = ensure_corpus(self.recipe(), self.cache_dir, num_proc=self.num_proc)
        for split in ("train", "val"):
            self.datasets[split] = self.built.rows(split)

    def train_dataloader(self):
        return self._loader("train", self.collator, train=True, fixed_epoch=None if self.dynamic else 0)

    def val_dataloader(self):
        return self._loader("val", self.collator, train=False)


def pretraining_sources(corpus: Corpus, sentences_per_sample: int = 1) -> list[DocumentSource]:
    """The document sources of a corpus's pretraining text: its own (a corpus of files or of a
    ``datasets`` source, which may be of any size), else its in-memory ``texts('train')`` and
    ``texts('val')``, each document ``sentences_per_sample`` consecutive sentences."""
    own = corpus.pretraining_sources()
    if own is not None:
        if sentences_per_sample != 1:
            raise ValueError("data.sentences_per_sample groups the sentences of an in-memory corpus; this corpus "
                             "streams its documents: set data.corpus.split_sentences=true (sentence ids within each "
                             "document) and data.packing=true (several documents per row) instead")
        return list(own)
    k = sentences_per_sample
    sources = []
    for split in ("train", "val"):
        texts = corpus.texts(split)
        sources.append(InMemoryDocuments([texts[i : i + k] for i in range(0, len(texts), k)], split))
    return sources


LABELLED_FAMILIES = ("classification", "tagging")


class TaskDataModule(_TrainValTestDataModule):
    """A labelled downstream task: sequence classification or token classification (tagging).

    Training sequences longer than ``max_length`` are truncated; a tagging task's val and test
    sentences are split into overlapping windows instead, so every word of the file is scored
    and the reports' supports are the file's label counts.
    """

    def __init__(self, corpus: Corpus, task: str, tokenizer, framing: Framing, *, seed: int, batch_size: int = 32,
                 num_workers: int = 0, max_length: int = 128, eval_batch_size: int | None = None):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, eval_batch_size=eval_batch_size)
        families = corpus.tasks()
        if task not in families:
            raise ValueError(f"unknown task {task!r}; this corpus has: {', '.join(families)}")
        self.corpus, self.task, self.family = corpus, task, families[task]
        if self.family not in LABELLED_FAMILIES:
            raise ValueError(f"task {task!r} is of family {self.family!r}; this data module serves "
                             f"{', '.join(LABELLED_FAMILIES)}")
        require(corpus, LabelledCorpus, task)
        self.tokenizer, self.framing, self.max_length = tokenizer, framing, int(max_length)
        self.label_names = corpus.label_names(task)
        self.collator = LabelCollator(tokenizer.pad_token_id)

    def _label_id(self, label: str, split: str) -> int:
        try:
            return self.label_index[label]
        except KeyError:
            raise ValueError(
                f"task {self.task!r}, split {split!r}: label {label!r} is not among the labels "
                f"{', '.join(self.label_names)}"
            ) from None

    def setup(self, stage: str | None = None) -> None:
        self.label_index = {name: i for i, name in enumerate(self.label_names)}
        for split in ("train", "val", "test"):
            if split in self.datasets:
                continue
            data = self.corpus.labelled(self.task, split)
            if self.family == "tagging" and split != "train":  # evaluation scores every word: long sentences become windows
                encoded = encode_word_windows(self.tokenizer, data.words, self.framing, self.max_length)
            else:
                encoded = encode_words(self.tokenizer, data.words, self.framing, self.max_length)
            if self.family == "classification":
                labels = [self._label_id(label, split) for label in data.labels]
                self.datasets[split] = EncodedDataset(encoded, labels=labels)
            else:
                word_labels = [[self._label_id(tag, split) for tag in tags] for tags in data.labels]
                self.datasets[split] = EncodedDataset(encoded, token_labels=word_labels_to_tokens(encoded, word_labels))

    def train_labels(self) -> list[int]:
        """All training labels (flattened for tagging): for the majority-class baseline."""
        dataset = self.datasets["train"]
        if self.family == "classification":
            return list(dataset.labels)
        return [int(x) for t in dataset.token_labels for x in t.tolist() if x >= 0]

    def split_labels(self, split: str) -> list[int]:
        dataset = self.datasets[split]
        if self.family == "classification":
            return list(dataset.labels)
        return [int(x) for t in dataset.token_labels for x in t.tolist() if x >= 0]



def _check_char_units(policy: ShiftPolicy, tokenizer) -> None:
    """``unit=char`` is honest only when every token is one character."""
    steps = getattr(policy, "steps", [policy])
    if any(getattr(step, "unit", None) == "char" for step in steps) and not is_char_level(tokenizer):
        raise ValueError(
            "shift unit 'char' moves characters, which needs a character-level tokenizer: set data.tokenizer=char "
            f"(this tokenizer, {type(tokenizer).__name__}, has multi-character tokens; use unit=token for them)"
        )
