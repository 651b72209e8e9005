"""Corpora: where the words and labels come from.

A corpus gives word lists for shift pretraining and labelled splits for downstream tasks;
everything downstream (tokenising, shifting, batching) is the same for every corpus. The
embedded default is the synthetic language; readers for real formats plug in here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .synthetic import SyntheticLanguage

SPLITS = ("train", "val", "test")


@dataclass
class LabelledSplit:
    words: list[list[str]]
    labels: list  # one label per example (classification) or one per word (tagging)


@runtime_checkable
class Corpus(Protocol):
    """What every corpus provides: text for shift pretraining, its tasks and their families
    (``classification``, ``tagging``, ``generation``, ``question_answering``: see
    :mod:`shiftlab.families`), and the words a word-level vocabulary is built from. A task family
    asks for more through one of the protocols below (:func:`require`)."""

    def texts(self, split: str) -> list[list[str]]: ...
    def tasks(self) -> dict[str, str]: ...  # task name -> family
    def default_tasks(self) -> list[str]: ...  # what task=auto fine-tunes
    def vocabulary(self) -> list[str]: ...
    def pretraining_sources(self) -> list | None: ...  # document sources of any size, or None: texts()


@runtime_checkable
class LabelledCorpus(Corpus, Protocol):
    """Classification and tagging: words with one label per example or per word."""

    def labelled(self, task: str, split: str) -> LabelledSplit: ...
    def label_names(self, task: str) -> list[str]: ...


@runtime_checkable
class PairCorpus(Corpus, Protocol):
    """Generation: (source words, target words) pairs, their untokenised sentences (what
    generated text is scored against), and the target language (None: English)."""

    target_lang: str | None

    def pairs(self, split: str) -> list[tuple[list[str], list[str]]]: ...
    def sentence_pairs(self, split: str) -> list[tuple[str, str]]: ...
    def detokenize(self, tokens) -> str: ...


@runtime_checkable
class QACorpus(Corpus, Protocol):
    """Extractive question answering: SQuAD-style examples (:class:`~shiftlab.data.squad.QAExample`)."""

    def qa_examples(self, task: str, split: str) -> list: ...
    def squad_version(self, task: str) -> str | None: ...  # "1.1", "2.0", or None: from the examples


def require(corpus, protocol: type, task: str) -> None:
    """Fail, naming what is missing, when ``corpus`` cannot serve ``task`` of a family that needs
    ``protocol``."""
    if isinstance(corpus, protocol):
        return
    wanted = [name for name in dir(protocol) if not name.startswith("_") and name not in dir(Protocol)]
    missing = sorted(name for name in wanted if not hasattr(corpus, name))
    raise TypeError(f"task {task!r} needs a corpus with {protocol.__name__}'s {', '.join(missing)}; "
                    f"{type(corpus).__name__} does not provide them")


class CorpusBase:
    """The defaults of :class:`Corpus`: ``task=auto`` fine-tunes every task, and pretraining
    reads ``texts('train')`` / ``texts('val')``."""

    def default_tasks(self) -> list[str]:
        return list(self.tasks())

    def pretraining_sources(self) -> list | None:
        return None


class SyntheticCorpus(CorpusBase):
    """The embedded synthetic language (see :mod:`shiftlab.data.synthetic`).

    Tasks: ``order`` (who acts on whom: needs word order), ``topic`` (order-insensitive
    control), ``entities`` (IOB2 tagging), ``word_order`` (word-order recovery, PERT's probe:
    some words of the sentence were moved, and each word is tagged with where it came from, see
    :func:`move_words`) and ``qa`` (extractive question answering, "who did what to whom", see
    :meth:`qa_examples`). Pretraining reads the ``pretrain`` split and validates on ``val``
    sentences; it never sees test sentences.
    """

    _TASKS = {"order": "classification", "topic": "classification", "entities": "tagging", "word_order": "tagging",
              "qa": "question_answering"}
    # Words of the ``qa`` questions the grammar never emits, appended after the grammar's (sorted)
    # vocabulary so that the ids of a word-level tokenizer's existing words stay where they were.
    # No "?": a new character would move every id of a character-level tokenizer (sorted characters).
    QA_WORDS = ("who", "someone")

    def __init__(self, seed: int = 0, n_pretrain: int = 20000, n_train: int = 4000, n_val: int = 500, n_test: int = 1000):
        self.seed = seed
        self.language = SyntheticLanguage(seed=seed, n_pretrain=n_pretrain, n_train=n_train, n_val=n_val, n_test=n_test)

    def texts(self, split: str) -> list[list[str]]:
        _check_split(split)
        source = {"train": "pretrain", "val": "val", "test": "test"}[split]
        return [list(ex.words) for ex in self.language.split(source)]

    def tasks(self) -> dict[str, str]:
        return dict(self._TASKS)

    def default_tasks(self) -> list[str]:
        """What ``task=auto`` fine-tunes: the order-sensitive task and tagging (``topic`` is
        the order-insensitive control, asked for by name)."""
        return ["order", "entities"]

    def labelled(self, task: str, split: str) -> LabelledSplit:
        _check_split(split)
        self._check_task(task)
        if self._TASKS[task] == "question_answering":
            raise ValueError(f"task {task!r} is extractive question answering: its examples come from "
                             "qa_examples(task, split), not labelled()")
        examples = self.language.split(split)
        words = [list(ex.words) for ex in examples]
        if task == "order":
            return LabelledSplit(words, [ex.order_label for ex in examples])
        if task == "topic":
            return LabelledSplit(words, [ex.topic_label for ex in examples])
        if task == "word_order":
            moved = [move_words(w, random.Random(f"shiftlab-word-order/{self.seed}/{split}/{i}")) for i, w in enumerate(words)]
            return LabelledSplit([m[0] for m in moved], [m[1] for m in moved])
        return LabelledSplit(words, [list(ex.tags) for ex in examples])

    def label_names(self, task: str) -> list[str]:
        self._check_task(task)
        lang = self.language
        return list({"order": lang.ORDER_LABELS, "topic": lang.TOPIC_LABELS, "entities": lang.TAGS,
                     "word_order": WORD_ORDER_LABELS, "qa": ()}[task])

    def vocabulary(self) -> list[str]:
        """The grammar's words (sorted), then the question words of ``qa`` (:attr:`QA_WORDS`)."""
        words = self.language.vocabulary()
        return words + [w for w in self.QA_WORDS if w not in words]

    def squad_version(self, task: str) -> str:
        """Every synthetic question has an answer: SQuAD 1.1 scoring."""
        return "1.1"

    def qa_examples(self, task: str, split: str) -> list:
        """Task ``qa``: one question per sentence of ``split``, "who did what to whom".

        The context is the sentence (words joined by single spaces); the question asks for the
        agent ("who paid someone" / "who pays someone" / "who will pay someone", in the
        sentence's tense) or for the patient ("who was paid" / "who is paid" / "who will be
        paid"), chosen by ``random.Random(f"shiftlab-qa/{seed}/{split}/{i}")`` so the sentences'
        own stream is untouched. The answer is that participant's noun phrase. Both participants
        occur in every sentence and their positions depend on the voice (active: agent first;
        passive: "PATIENT was paid by AGENT"), so the answer follows from word order alone.
        Ids are ``synthetic-qa/<split>/<i>``; every question is answerable.
        """
        from .squad import QAExample

        _check_split(split)
        self._check_task(task)
        if self._TASKS[task] != "question_answering":
            raise ValueError(f"task {task!r} is not a question answering task; qa_examples serves: "
                             + ", ".join(name for name, family in self._TASKS.items() if family == "question_answering"))
        out = []
        for i, ex in enumerate(self.language.split(split)):
            plan = ex.plan
            ask_agent = random.Random(f"shiftlab-qa/{self.seed}/{split}/{i}").random() < 0.5
            verb = plan.verb
            if ask_agent:
                span = ex.agent_span
                verb_words = {"present": (verb.third,), "past": (verb.past,), "future": ("will", verb.base)}[plan.tense]
                question = ("who",) + verb_words + ("someone",)
            else:
                span = ex.patient_span
                auxiliary = {"present": ("is",), "past": ("was",), "future": ("will", "be")}[plan.tense]
                question = ("who",) + auxiliary + (verb.participle,)
            answer = " ".join(ex.words[span[0] : span[1]])
            start = sum(len(word) + 1 for word in ex.words[: span[0]])
            out.append(QAExample(f"synthetic-qa/{split}/{i}", " ".join(question), ex.text, ((answer, start),), False))
        return out

    def _check_task(self, task: str) -> None:
        if task not in self._TASKS:
            raise ValueError(f"unknown task {task!r} for the synthetic corpus; valid tasks: {', '.join(self._TASKS)}")


# Where a word of a ``word_order`` sentence came from, relative to where it is now: "0" (in place)
# or "L1".."L3" / "R1".."R3" (from 1..3 positions to its left / right; 3 stands for 3 or more).
WORD_ORDER_LABELS = ("0", "L1", "L2", "L3", "R1", "R2", "R3")


def move_words(words: list[str], rng: random.Random, rate: float = 0.15, max_distance: int = 3) -> tuple[list[str], list[str]]:
    """Move ``max(1, round(rate * n))`` words, one after another, each by 1..``max_distance``
    positions left or right; return the moved sentence and, per word, where it came from
    (:data:`WORD_ORDER_LABELS`). A word the moves brought back to its own place is "0"."""
    order = list(range(len(words)))
    for _ in range(max(1, round(rate * len(words)))):
        source = rng.randrange(len(order))
        target = min(len(order) - 1, max(0, source + rng.choice([-1, 1]) * rng.randint(1, max_distance)))
        order.insert(target, order.pop(source))
    labels = []
    for position, origin in enumerate(order):
        offset = origin - position  # > 0: it came from the right
        labels.append("0" if offset == 0 else ("R" if offset > 0 else "L") + str(min(abs(offset), 3)))
    return [words[i] for i in order], labels


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
