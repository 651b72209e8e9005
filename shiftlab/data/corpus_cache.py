"""Tokenised pretraining corpora: built once, in parallel, and read in constant memory by every later run.

:func:`ensure_corpus` turns document sources (:mod:`shiftlab.data.documents`) into framed rows
(:mod:`shiftlab.data.packing`) stored as Arrow files, the format of ``datasets``, under
``$SHIFTLAB_CACHE/corpora/<key>/``. The key is a hash of everything the rows depend on: each
source's fingerprint (files: path, size, modification time; ``datasets`` sources: their own
fingerprint; in-memory corpora: their words), the tokenizer (its whole serialised form), the
framing tokens, ``max_length``, ``packing`` and the code that makes the rows. A later run, or
another job of a sweep, or another rank of a DDP job, with the same key opens the files and
tokenises nothing; a changed file or tokenizer makes a new key. One process builds an entry while
the others wait for it (:func:`shiftlab.utils.cache.build_once`).

Building: the sources' chunks (8 MB of a text file, 20,000 documents of a dataset) are
tokenised by ``num_proc`` worker processes, each writing its chunk's rows to its own Arrow file,
in chunk order. Rows never depend on the number of processes. A worker holds one batch of
documents at a time, so building takes the same memory for any corpus size.

Reading: :meth:`BuiltCorpus.rows` reads a split's rows for training with positioned reads through
each file's index, so a training process's memory does not grow with the corpus
(:mod:`shiftlab.data.row_dataset` says why this is not a memory map); :meth:`BuiltCorpus.dataset`
opens the same files as a ``datasets.Dataset``. With ``cache_dir=None`` the same rows are built
in a temporary directory that goes with the process (``data.cache=false``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from shiftlab.utils import logs
from shiftlab.utils.cache import build_once, content_key, source_fingerprint
from shiftlab.utils.io import write_json_atomic

from .documents import DocumentSource
from .packing import ID_DTYPE, POSITION_DTYPE, RowCutter, Rows, tokenize_documents
from .row_dataset import COLUMNS, RowDataset, index_path
from .tokenization import Framing

CACHE_FORMAT = 2  # 2: record batches of 64 rows and an index per file
MANIFEST = "manifest.json"
DOCUMENTS_PER_BATCH = 2_000  # documents tokenised at once by a worker

_HERE = Path(__file__).resolve().parent
_CODE = (_HERE / "documents.py", _HERE / "packing.py", _HERE / "corpus_cache.py", _HERE / "readers.py",
         _HERE / "tokenization.py")


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's complete serialised form (vocabulary, normaliser, pre-tokeniser...)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer: shiftlab needs one (word ids)")
    return content_key([type(tokenizer).__name__, backend.to_str(), bool(getattr(tokenizer, "is_char_level", False))])


@dataclass
class CorpusRecipe:
    """Everything the rows depend on."""

    sources: Sequence[DocumentSource]
    tokenizer: object
    framing: Framing
    max_length: int
    packing: bool = False

    def key_inputs(self) -> dict:
        return {
            "format": CACHE_FORMAT,
            "code": source_fingerprint(*_CODE),
            "sources": [source.fingerprint() for source in self.sources],
            "tokenizer": tokenizer_fingerprint(self.tokenizer),
            "framing": [list(self.framing.prefix), list(self.framing.suffix)],
            "max_length": int(self.max_length),
            "packing": bool(self.packing),
        }

    def splits(self) -> list[str]:
        return list(dict.fromkeys(split for source in self.sources for split in source.splits))


@dataclass
class BuiltCorpus:
    """A built corpus: its directory and manifest; :meth:`rows` opens a split for training."""

    directory: Path
    manifest: dict
    built_now: bool = False
    _keepalive: object = field(default=None, repr=False)  # the temporary directory's finaliser

    @property
    def key(self) -> str:
        return self.manifest["key"]

    def _files(self, name: str) -> list[Path]:
        info = self.manifest["splits"].get(name)
        if info is None or not info["files"]:
            raise ValueError(f"the pretraining corpus has no {name!r} rows ({self.directory}); splits: "
                             f"{', '.join(s for s, i in self.manifest['splits'].items() if i['files'])}")
        return [self.directory / f for f in info["files"]]

    def rows(self, name: str) -> RowDataset:
        """A split's rows for training: read by positioned reads, in constant memory (see
        :mod:`shiftlab.data.row_dataset`)."""
        return RowDataset(self._files(name))

    def dataset(self, name: str):
        """A split as a ``datasets.Dataset`` over the same files (memory-mapped): for looking at
        the rows with the tools of ``datasets``."""
        import datasets

        parts = [datasets.Dataset.from_file(str(path), in_memory=False) for path in self._files(name)]
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)

    def describe(self) -> str:
        parts = []
        for name, info in self.manifest["splits"].items():
            parts.append(f"{name}: {info['rows']:,} rows, {info['tokens']:,} tokens, {info['documents']:,} documents")
        return "; ".join(parts)


def ensure_corpus(recipe: CorpusRecipe, cache_dir: str | Path | None, *, num_proc: int | None = None,
                  log: Callable[[str], None] = logs.log.info) -> BuiltCorpus:
    """The built corpus for ``recipe``: opened from ``cache_dir/corpora/<key>`` when it is
    there, built there first when not (``cache_dir=None``: built in a temporary directory)."""
    inputs = recipe.key_inputs()
    key = content_key(inputs)
    if cache_dir is None:
        directory = Path(tempfile.mkdtemp(prefix="shiftlab-corpus-"))
        _build(recipe, inputs, key, directory, num_proc, log)
        built = _open(directory, built_now=True)
        built._keepalive = weakref.finalize(built, shutil.rmtree, str(directory), True)
        return built
    final = Path(cache_dir).expanduser() / "corpora" / key
    built_now = build_once(final, lambda tmp: _build(recipe, inputs, key, tmp, num_proc, log),
                           waiting_message=f"waiting for another process to build the corpus cache {final}")
    corpus = _open(final, built_now=built_now)
    if not built_now:
        log(f"pretraining corpus from the cache {final} ({corpus.describe()}): nothing to tokenise")
    return corpus


def _open(directory: Path, built_now: bool) -> BuiltCorpus:
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    return BuiltCorpus(directory, manifest, built_now=built_now)


# ----------------------------------------------------------------------------- building


def _build(recipe: CorpusRecipe, inputs: dict, key: str, directory: Path, num_proc: int | None,
           log: Callable[[str], None]) -> None:
    started = time.perf_counter()
    chunks = [(i, piece) for i, source in enumerate(recipe.sources) for piece in source.chunks()]
    workers = max(1, min(int(num_proc or os.cpu_count() or 1), len(chunks)))
    if all(source.small for source in recipe.sources):
        workers = 1  # starting processes would cost more than they save
    what = "; ".join(source.describe() for source in recipe.sources)
    log(f"tokenising the pretraining corpus ({what}) into {directory} with {workers} process(es)")
    job = _ChunkJob(recipe.sources, recipe.tokenizer, recipe.framing, recipe.max_length, recipe.packing, directory)
    totals = {split: {"files": [], "rows": 0, "tokens": 0, "documents": 0} for split in recipe.splits()}
    tokens, last_report = 0, started
    if workers == 1:
        results = map(job, enumerate(chunks))
        pool = None
    else:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # fast tokenizers must not fork their threads
        global _FORKED_JOB
        _FORKED_JOB = job  # the workers inherit it through fork: sources and tokenizer are not pickled per task
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_default_signal_handling)
        results = pool.imap(_run_forked_job, enumerate(chunks))
    try:
        for done, stats in enumerate(results, 1):
            for split, part in stats.items():
                total = totals.setdefault(split, {"files": [], "rows": 0, "tokens": 0, "documents": 0})
                if part["rows"]:
                    total["files"].append(part["file"])
                for name in ("rows", "tokens", "documents"):
                    total[name] += part[name]
                tokens += part["tokens"]
            now = time.perf_counter()
            if now - last_report > 30 or done == len(chunks):
                last_report = now
                log(f"corpus cache: {done}/{len(chunks)} chunks, {tokens:,} tokens, "
                    f"{tokens / max(now - started, 1e-9):,.0f} tokens/s")
    except BaseException:
        if pool is not None:
            pool.terminate()  # SIGTERM: the workers' handlers are the default ones (_default_signal_handling)
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
            _FORKED_JOB = None
    seconds = time.perf_counter() - started
    budget = recipe.max_length - len(recipe.framing.prefix) - len(recipe.framing.suffix)
    for split, total in totals.items():
        if not total["rows"]:
            raise ValueError(f"the pretraining corpus's {split!r} split is empty after tokenising ({what}); "
                             + ("raise data.corpus.val_fraction or give val files" if split == "val" else
                                "check the files and data.corpus.min_chars"))
        total["fill"] = round(total["tokens"] / (total["rows"] * budget), 4)
    manifest = {"key": key, "inputs": inputs, "splits": totals,
                "build": {"seconds": round(seconds, 2), "processes": workers, "chunks": len(chunks),
                          "tokens_per_s": round(tokens / max(seconds, 1e-9)), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    write_json_atomic(directory / MANIFEST, manifest)
    log(f"corpus cache built in {seconds:.1f} s ({tokens:,} tokens, {tokens / max(seconds, 1e-9):,.0f} tokens/s)")


_FORKED_JOB: "_ChunkJob | None" = None


def _default_signal_handling() -> None:
    """A worker forked inside ``Trainer.fit`` inherits Lightning's SIGTERM handler, which only
    sets a flag: the default handling lets ``Pool.terminate()`` stop it, and SIGINT (Ctrl-C, sent
    to the whole process group) is left to the parent, which terminates the pool."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_forked_job(numbered_chunk) -> dict[str, dict]:
    return _FORKED_JOB(numbered_chunk)


@dataclass
class _ChunkJob:
    """Tokenise and cut one chunk into ``<split>-<chunk>.arrow`` files (run in a worker process)."""

    sources: Sequence[DocumentSource]
    tokenizer: object
    framing: Framing
    max_length: int
    packing: bool
    directory: Path

    def __call__(self, numbered_chunk) -> dict[str, dict]:
        number, (source_index, piece) = numbered_chunk
        source = self.sources[source_index]
        cutters: dict[str, RowCutter] = {}
        writers: dict[str, _RowWriter] = {}
        pending: dict[str, list] = {}

        def emit(split: str, rows: Rows) -> None:
            if len(rows):
                if split not in writers:
                    writers[split] = _RowWriter(self.directory / f"{split}-{number:06d}.arrow")
                writers[split].write(rows)

        def flush(split: str) -> None:
            docs, pending[split] = pending[split], []
            if docs:
                emit(split, cutters[split].add(tokenize_documents(self.tokenizer, docs)))
                writers_stats[split]["documents"] += len(docs)

        writers_stats: dict[str, dict] = {}
        for split, document in source.documents(piece):
            if split not in pending:
                pending[split] = []
                cutters[split] = RowCutter(self.framing, self.max_length, self.packing)
                writers_stats[split] = {"documents": 0}
            pending[split].append(document)
            if len(pending[split]) >= DOCUMENTS_PER_BATCH:
                flush(split)
        for split in list(pending):
            flush(split)
            emit(split, cutters[split].finish())
        out = {}
        for split, stats in writers_stats.items():
            writer = writers.get(split)
            if writer is not None:
                writer.close()
            out[split] = {"file": writer.path.name if writer else None, "rows": writer.rows if writer else 0,
                          "tokens": writer.tokens if writer else 0, "documents": stats["documents"]}
        return out


ROWS_PER_RECORD_BATCH = 64  # a training batch reads whole record batches: small ones waste little


class _RowWriter:
    """Rows appended to one Arrow IPC stream file (the format ``datasets.Dataset.from_file`` opens),
    in record batches of :data:`ROWS_PER_RECORD_BATCH` rows, plus an index (``<file>.index.npy``:
    each record batch's byte offset and row count) so a reader can fetch any row's record batch
    with one positioned read, without scanning the stream."""

    def __init__(self, path: Path):
        import pyarrow as pa

        self.path = path
        self.schema = row_schema()
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.rows = self.tokens = 0
        self.index: list[tuple[int, int]] = []  # (byte offset of the record batch's message, rows)

    def write(self, rows: Rows) -> None:
        import pyarrow as pa

        for start in range(0, len(rows), ROWS_PER_RECORD_BATCH):
            end = min(len(rows), start + ROWS_PER_RECORD_BATCH)
            lo, hi = rows.offsets[start], rows.offsets[end]
            offsets = pa.array((rows.offsets[start : end + 1] - lo).astype(np.int32))
            arrays = [pa.ListArray.from_arrays(offsets, pa.array(getattr(rows, name)[lo:hi])) for name in COLUMNS]
            self.index.append((self.sink.tell(), end - start))  # the first one is fixed in close()
            self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        self.rows += len(rows)
        self.tokens += rows.content_tokens

    def close(self) -> None:
        import pyarrow as pa

        self.writer.close()
        self.sink.close()
        if self.index:  # the stream's schema message is written with the first record batch: skip it
            with pa.OSFile(str(self.path), "rb") as source:
                pa.ipc.read_message(source)
                self.index[0] = (source.tell(), self.index[0][1])
        np.save(index_path(self.path), np.asarray(self.index, dtype=np.int64).reshape(-1, 2))


def row_schema():
    import pyarrow as pa

    return pa.schema([("input_ids", pa.list_(pa.from_numpy_dtype(ID_DTYPE))),
                      ("word_ids", pa.list_(pa.from_numpy_dtype(POSITION_DTYPE))),
                      ("sentence_ids", pa.list_(pa.from_numpy_dtype(POSITION_DTYPE)))])

