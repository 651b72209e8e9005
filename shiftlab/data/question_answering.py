"""Extractive question answering (SQuAD-style): questions and contexts tokenised into windows.

Each question becomes one or more *windows* ``[CLS] question [SEP] context-window [SEP]``: the
backbone framing's prefix and suffix around the whole (``[CLS]`` / ``[SEP]`` for encoders,
``[BOS]`` / ``[EOS]`` for decoders), and the tokenizer's separator (``sep``, else ``eos``) between
question and context. A context longer than fits is cut into overlapping windows, as
transformers' ``run_qa`` does with ``doc_stride``, but cut at word boundaries; no question is ever
dropped. Training uses every window; evaluation predicts every window and
:meth:`QADataModule.postprocess` picks each question's best span over its windows, so every
question is scored exactly once, against the untokenised answers.

Questions and contexts are split into words with :func:`~shiftlab.data.squad.context_words` and
tokenised as pre-split words (so word-, character- and sub-word tokenizers all work); each token
carries its word's character span in the context, so a predicted span is always whole words.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from .collate import pad_stack
from .corpus import QACorpus, require
from .datamodules import _TrainValTestDataModule
from .squad import QAExample, char_span_to_words, context_words, normalize_version
from .tokenization import Framing

__all__ = ["QACollator", "QADataModule", "QAWindow", "QAWindowDataset", "context_windows"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class QAWindow:
    """One window of one question, and how to read predictions on it back into the context.

    ``question``: the question's index in :meth:`QADataModule.examples`; ``lo`` / ``hi``: the
    context tokens ``[lo, hi)`` the window holds, starting at position ``context_start`` of its
    ``length`` tokens; ``start_position`` / ``end_position``: the answer's first and last token
    in the window, or 0 (the ``[CLS]`` position) when the question is unanswerable or its answer
    is not wholly inside this window.
    """

    question: int
    lo: int
    hi: int
    context_start: int
    length: int
    start_position: int
    end_position: int
    # Per token of the whole context, shared by every window of that context: its word's
    # (start_char, end_char) and the word's index.
    token_spans: torch.Tensor = field(repr=False)
    token_words: torch.Tensor = field(repr=False)

    @property
    def offsets(self) -> torch.Tensor:
        """``[length, 2]``: per token of the window, its word's ``(start_char, end_char)`` in the
        context (end exclusive); ``-1`` on question, separator and framing tokens."""
        out = torch.full((self.length, 2), -1, dtype=torch.long)
        out[self.context_start : self.context_start + self.hi - self.lo] = self.token_spans[self.lo : self.hi]
        return out

    @property
    def word_index(self) -> torch.Tensor:
        """``[length]``: per token of the window, the index of its context word; ``-1`` elsewhere."""
        out = torch.full((self.length,), -1, dtype=torch.long)
        out[self.context_start : self.context_start + self.hi - self.lo] = self.token_words[self.lo : self.hi]
        return out


def context_windows(word_ids: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[lo, hi)`` covering a context of ``len(word_ids)`` tokens, each at most
    ``budget`` tokens, consecutive ones overlapping by at least ``stride`` tokens (transformers'
    ``doc_stride``), all cut at word starts; only a word longer than the budget is cut inside.
    ``word_ids``: the word of each token."""
    if not 0 <= stride < budget:
        raise ValueError(f"the window overlap (doc_stride={stride}) must be >= 0 and below the context budget {budget}")
    n = len(word_ids)
    if n <= budget:
        return [(0, n)]
    starts = [j for j in range(n) if j == 0 or word_ids[j] != word_ids[j - 1]]
    out, lo = [], 0
    while n - lo > budget:
        k = bisect_right(starts, lo + budget) - 1
        hi = starts[k] if starts[k] > lo else lo + budget  # one word longer than the budget: cut inside it
        out.append((lo, hi))
        k = bisect_right(starts, hi - stride) - 1
        if k >= 0 and starts[k] > lo:
            lo = starts[k]
        else:  # no word start leaves the overlap: the next word start, else inside the long word
            k = bisect_right(starts, lo)
            lo = starts[k] if k < len(starts) and starts[k] < hi else max(lo + 1, hi - stride)
    out.append((lo, n))
    return out


@dataclass
class _Split:
    examples: list[QAExample]
    heads: list[torch.Tensor]  # per question: prefix + question tokens + separator
    contexts: list[torch.Tensor]  # per distinct context: its token ids
    context_of: list[int]  # per question: its context
    windows: list[QAWindow]
    truncated: int  # questions cut to max_question_length tokens
    unplaceable: int  # answerable questions whose answer covers no token (labelled [CLS] everywhere)


class QAWindowDataset(Dataset):
    """The windows of a split as items ``{sample_id, epoch, input_ids, start_position,
    end_position}`` (ids built on the fly from the shared question and context tokens).
    Accepts plain indices and :class:`~shiftlab.data.sampling.EpochIndexSampler`'s pairs."""

    def __init__(self, split: _Split, suffix: Sequence[int]):
        self.split = split
        self.suffix = torch.tensor(list(suffix), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.split.windows)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        window = self.split.windows[index]
        context = self.split.contexts[self.split.context_of[window.question]][window.lo : window.hi]
        return {
            "sample_id": index,
            "epoch": epoch,
            "input_ids": torch.cat([self.split.heads[window.question], context, self.suffix]),
            "start_position": window.start_position,
            "end_position": window.end_position,
        }


class QACollator:
    """Pad a batch of windows: ``input_ids`` (pad id), ``attention_mask`` (from the lengths, so a
    pad id that is also a real token, as GPT-2's eos, is still attended), ``start_positions``,
    ``end_positions``, ``sample_ids`` (window indices) and ``label_count`` (windows, counted on
    the host)."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, items) -> dict:
        input_ids = pad_stack([it["input_ids"] for it in items], self.pad_id)
        lengths = torch.tensor([len(it["input_ids"]) for it in items])
        return {
            "input_ids": input_ids,
            "attention_mask": (torch.arange(input_ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long(),
            "start_positions": torch.tensor([it["start_position"] for it in items], dtype=torch.long),
            "end_positions": torch.tensor([it["end_position"] for it in items], dtype=torch.long),
            "sample_ids": torch.tensor([it["sample_id"] for it in items], dtype=torch.long),
            "label_count": len(items),
        }


class QADataModule(_TrainValTestDataModule):
    """A ``question_answering`` task of a corpus with ``qa_examples(task, split)``
    (:class:`~shiftlab.data.qa_corpus.SquadCorpus`, the synthetic corpus's ``qa``).

    ``max_length``: tokens per window, everything included. ``max_question_length``: a longer
    question is truncated to this many tokens (at a word boundary where possible; counted in
    ``truncated_questions``), never dropped. ``doc_stride``: the least overlap, in tokens, of
    consecutive windows of a long context; it must be below what a window leaves for the
    context, ``max_length`` - framing - separator - ``max_question_length``.

    Batches: see :class:`QACollator`. :meth:`examples` and :meth:`windows` give what
    post-processing needs, and :meth:`postprocess` turns per-window logits into a
    :class:`~shiftlab.metrics.squad.QAReport`. ``version`` (``"1.1"`` / ``"2.0"``) is the
    corpus's, else 2.0 when a split has an unanswerable question; only 2.0 predicts "no answer".
    """

    family = "question_answering"

    def __init__(self, corpus, task: str, tokenizer, framing: Framing, *, seed: int, batch_size: int = 32,
                 num_workers: int = 0, max_length: int = 128, eval_batch_size: int | None = None,
                 doc_stride: int = 32, max_question_length: int = 32):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, eval_batch_size=eval_batch_size)
        families = corpus.tasks()
        if families.get(task) != "question_answering":
            raise ValueError(f"task {task!r} is not a question answering task of this corpus; its tasks: "
                             + (", ".join(f"{name} ({family})" for name, family in families.items()) or "none"))
        require(corpus, QACorpus, task)
        self.corpus, self.task, self.tokenizer, self.framing = corpus, task, tokenizer, framing
        self.label_names: list[str] = []  # answers are spans: no label set
        self.separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if self.separator is None:
            raise ValueError(f"{type(tokenizer).__name__} has neither a sep nor an eos token to put between the "
                             "question and the context")
        self.max_length, self.doc_stride = int(max_length), int(doc_stride)
        self.max_question_length = int(max_question_length)
        if self.max_question_length < 1:
            raise ValueError(f"max_question_length must be >= 1, got {max_question_length}")
        room = self.max_length - len(framing.prefix) - len(framing.suffix) - 1 - self.max_question_length
        if not 0 <= self.doc_stride < room:
            raise ValueError(
                f"max_length={self.max_length} leaves {room} context tokens per window after the framing, the "
                f"separator and a question of max_question_length={self.max_question_length} tokens; doc_stride="
                f"{self.doc_stride} must be >= 0 and below that (raise max_length or lower doc_stride / "
                "max_question_length)")
        self.collator = QACollator(tokenizer.pad_token_id)
        self._splits: dict[str, _Split] = {}
        self._version: str | None = None

    # -- building -----------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.datasets:
                self._splits[split] = self._build(self.corpus.qa_examples(self.task, split))
                self.datasets[split] = QAWindowDataset(self._splits[split], self.framing.suffix)

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[tuple[str, int, int]]], list[list[int]], list[list[int]]]:
        """(words, token ids, word id per token) of each text, tokenised as pre-split words."""
        words = [context_words(text) for text in texts]
        if not words:
            return [], [], []
        batch = self.tokenizer([[w for w, _, _ in ws] for ws in words], is_split_into_words=True,
                               add_special_tokens=False, verbose=False)
        word_ids = [[-1 if w is None else w for w in batch.word_ids(i)] for i in range(len(words))]
        return words, list(batch["input_ids"]), word_ids

    def _build(self, examples: list[QAExample]) -> _Split:
        contexts = list(dict.fromkeys(ex.context for ex in examples))
        index_of = {context: i for i, context in enumerate(contexts)}
        c_words, c_ids, c_word_ids = self._tokenize(contexts)
        spans, token_words = [], []
        for ws, wids in zip(c_words, c_word_ids):
            token_words.append(torch.tensor(wids, dtype=torch.long))
            spans.append(torch.tensor([[ws[w][1], ws[w][2]] for w in wids], dtype=torch.long).reshape(-1, 2))
        _, q_ids, q_word_ids = self._tokenize([ex.question for ex in examples])
        prefix, budget_base = list(self.framing.prefix), self.max_length - len(self.framing.prefix) - len(self.framing.suffix) - 1
        heads, context_of, windows, truncated, unplaceable = [], [], [], 0, 0
        for q, ex in enumerate(examples):
            ids, wids = q_ids[q], q_word_ids[q]
            if len(ids) > self.max_question_length:
                ids = ids[: _word_cut(wids, self.max_question_length)]
                truncated += 1
            heads.append(torch.tensor(prefix + list(ids) + [self.separator], dtype=torch.long))
            c = index_of[ex.context]
            context_of.append(c)
            answer = self._answer_tokens(ex, c_words[c], token_words[c])
            if answer is None and not ex.is_impossible:
                unplaceable += 1
            context_start = len(prefix) + len(ids) + 1
            for lo, hi in context_windows(c_word_ids[c], budget_base - len(ids), self.doc_stride):
                start = end = 0
                if answer is not None and lo <= answer[0] and answer[1] < hi:
                    start, end = context_start + answer[0] - lo, context_start + answer[1] - lo
                windows.append(QAWindow(q, lo, hi, context_start, context_start + hi - lo + len(self.framing.suffix),
                                        start, end, spans[c], token_words[c]))
        return _Split(examples, heads, [torch.tensor(ids, dtype=torch.long) for ids in c_ids], context_of, windows,
                      truncated, unplaceable)

    @staticmethod
    def _answer_tokens(example: QAExample, words, token_words: torch.Tensor) -> tuple[int, int] | None:
        """The first and last context token of the example's first answer (what training learns,
        as run_qa); None for an unanswerable question or an answer that covers no token."""
        if example.is_impossible or not example.answers:
            return None
        text, start_char = example.answers[0]
        span = char_span_to_words(words, start_char, start_char + len(text))
        if span is None:
            return None
        inside = ((token_words >= span[0]) & (token_words <= span[1])).nonzero().flatten()
        return None if len(inside) == 0 else (int(inside[0]), int(inside[-1]))

    # -- what post-processing reads ------------------------------------------------------------

    def _split(self, split: str) -> _Split:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        if split not in self._splits:
            self.setup()
        return self._splits[split]

    def examples(self, split: str) -> list[QAExample]:
        """The split's questions, in corpus order (:attr:`QAWindow.question` indexes them)."""
        return list(self._split(split).examples)

    def windows(self, split: str) -> list[QAWindow]:
        """The split's windows, in dataset order (a batch's ``sample_ids`` index them)."""
        return list(self._split(split).windows)

    def truncated_questions(self, split: str) -> int:
        """How many questions of ``split`` were longer than ``max_question_length`` tokens."""
        return self._split(split).truncated

    def unplaceable_answers(self, split: str) -> int:
        """Answerable questions whose (first) answer covers no token: labelled ``[CLS]`` in
        training, still scored against their answers."""
        return self._split(split).unplaceable

    @property
    def version(self) -> str:
        """``"1.1"`` or ``"2.0"``: the corpus's ``version`` when it has one, else 2.0 when any
        split has an unanswerable question."""
        if self._version is None:
            declared = normalize_version(self.corpus.squad_version(self.task))
            if declared is None:
                declared = "2.0" if any(ex.is_impossible for s in SPLITS for ex in self._split(s).examples) else "1.1"
            self._version = declared
        return self._version

    def postprocess(self, split: str, window_ids: Sequence[int], start_logits: Sequence[torch.Tensor],
                    end_logits: Sequence[torch.Tensor], *, max_answer_length: int = 30, null_threshold: float = 0.0,
                    n_examples: int = 5):
        """A :class:`~shiftlab.metrics.squad.QAReport` from per-window logits.

        ``window_ids[k]`` is the window (a ``sample_ids`` value) whose logits are
        ``start_logits[k]`` / ``end_logits[k]`` (1-D; right padding beyond the window's length is
        ignored), from any number of processes in any order. Each question gets the best span
        over its windows (:func:`~shiftlab.metrics.squad.best_spans`, spans of at most
        ``max_answer_length`` words; SQuAD 2.0: "no answer" when the null score beats it by
        more than ``null_threshold``), read back as the context's characters. Questions with
        no window among ``window_ids`` (a partial pass) are left out of the scores and the
        report says how many were scored.
        """
        from shiftlab.metrics.squad import best_spans, qa_report

        data = self._split(split)
        ids = [int(i) for i in window_ids]
        if not len(ids) == len(start_logits) == len(end_logits):
            raise ValueError(f"postprocess needs one window id per start and end row; got {len(ids)} ids, "
                             f"{len(start_logits)} start and {len(end_logits)} end rows")
        if len(set(ids)) != len(ids):
            raise ValueError("a window was predicted twice: the evaluation shares of the processes overlap")
        bad = [i for i in ids if not 0 <= i < len(data.windows)]
        if bad:
            raise ValueError(f"window ids {bad[:5]} are not windows of the {split} split ({len(data.windows)} windows)")
        windows = [data.windows[i] for i in ids]
        starts, ends = [], []
        for window, s, e in zip(windows, start_logits, end_logits):
            if s.shape[-1] < window.length or e.shape[-1] < window.length:
                raise ValueError(f"logits of {s.shape[-1]} / {e.shape[-1]} positions for a window of {window.length} tokens")
            starts.append(s.reshape(-1)[: window.length])
            ends.append(e.reshape(-1)[: window.length])
        choices = best_spans(starts, ends, [w.question for w in windows], [w.word_index for w in windows],
                             max_answer_length=max_answer_length, null_threshold=null_threshold,
                             allow_null=self.version == "2.0")
        predictions = {}
        for question, choice in choices.items():
            example = data.examples[question]
            if choice.is_null:
                predictions[example.id] = ""
                continue
            offsets = windows[choice.window].offsets
            predictions[example.id] = example.context[int(offsets[choice.start, 0]) : int(offsets[choice.end, 1])]
        scored = [data.examples[q] for q in sorted(choices)]
        settings = {"max_answer_length": max_answer_length, "max_length": self.max_length,
                    "doc_stride": self.doc_stride, "max_question_length": self.max_question_length}
        if self.version == "2.0":
            settings["null_threshold"] = null_threshold
        return qa_report(predictions, scored, version=self.version, n_questions=len(data.examples),
                         settings=settings, n_examples=n_examples,
                         title=f"{self.task} ({split}): SQuAD v{self.version} scores")


def _word_cut(word_ids: Sequence[int], limit: int) -> int:
    """The largest cut ``<= limit`` at a word start (``limit`` itself inside one long word)."""
    cut = limit
    while 0 < cut < len(word_ids) and word_ids[cut] == word_ids[cut - 1]:
        cut -= 1
    return cut or limit
