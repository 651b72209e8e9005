"""Data: corpora (synthetic and real), tokenisation, on-the-fly shifting collators, data modules."""

from .corpus import Corpus, LabelledSplit, SyntheticCorpus
from .datamodules import ShiftPretrainDataModule, TaskDataModule
from .pretrain_text import PretrainTextCorpus
from .tokenization import Framing, build_word_tokenizer, encode_words

__all__ = [
    "Corpus",
    "Framing",
    "LabelledSplit",
    "PretrainTextCorpus",
    "ShiftPretrainDataModule",
    "SyntheticCorpus",
    "TaskDataModule",
    "build_word_tokenizer",
    "encode_words",
]
