"""A torch ``Dataset`` over the framed rows of a built corpus (:mod:`shiftlab.data.corpus_cache`).

Items look like :class:`~shiftlab.data.collate.EncodedDataset`'s (``sample_id``, ``epoch``,
``input_ids``, ``word_ids``, ``sentence_ids``), so :class:`~shiftlab.data.collate.ShiftCollator`
reads both alike. A batch is fetched in one call (``__getitems__``, which the DataLoader uses).

Why not ``datasets.Dataset.from_file`` (which opens the same files): a memory map counts every
page it has touched in the process's resident memory, and more than that, since Arrow asks the
kernel to read ahead whole record batches and the kernel maps the cached pages around each one it
touches. Measured on a 1 GB corpus (1.78 M rows), merely opening the split with ``datasets``
added 470 MB of resident memory (the stream format is read message by message) and 100 random
batches of 32 rows another 400 MB, against 0.2 MB and ~60 MB for 100 MB of text: memory that grows
with the corpus. Here each file's index (the byte offset of every record batch of 64 rows) says
where a row is, and the rows a batch needs are read with positioned reads into ordinary buffers
that go when the batch goes: the process holds the index (16 bytes per 64 rows) and the batches in
flight, and the operating system's page cache, not the process, keeps the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

COLUMNS = ("input_ids", "word_ids", "sentence_ids")


def index_path(path: Path) -> Path:
    return path.with_name(path.name + ".index.npy")


class RowDataset(Dataset):
    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("a RowDataset needs at least one row file")
        indexes = [np.load(index_path(path)) for path in self.paths]
        self.batch_file = np.concatenate([np.full(len(ix), i, dtype=np.int32) for i, ix in enumerate(indexes)])
        self.batch_offset = np.concatenate([ix[:, 0] for ix in indexes])
        rows = np.concatenate([ix[:, 1] for ix in indexes])
        self.batch_start = np.concatenate([[0], np.cumsum(rows)])  # global index of each record batch's first row
        self._files: dict[int, object] = {}
        self._schema = None

    def __len__(self) -> int:
        return int(self.batch_start[-1])

    def __getitem__(self, key):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys) -> list[dict]:
        pairs = [key if isinstance(key, tuple) else (0, key) for key in keys]
        indices = np.fromiter((int(index) for _, index in pairs), dtype=np.int64, count=len(pairs))
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        batches = np.searchsorted(self.batch_start, indices, side="right") - 1
        columns = {b: self._read(int(b)) for b in np.unique(batches)}
        items = []
        for (epoch, index), b, row in zip(pairs, batches, indices - self.batch_start[batches]):
            columns_of_batch = columns[b]
            item = {"sample_id": index, "epoch": epoch}
            for name, (offsets, values) in columns_of_batch.items():
                item[name] = torch.from_numpy(values[offsets[row] : offsets[row + 1]].astype(np.int64))
            items.append(item)
        return items

    def _read(self, batch: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One record batch, read from its byte offset: per column (offsets, values)."""
        import pyarrow as pa

        number = int(self.batch_file[batch])
        source = self._files.get(number)
        if source is None:
            source = self._files[number] = pa.OSFile(str(self.paths[number]), "rb")
            if self._schema is None:
                self._schema = pa.ipc.open_stream(pa.OSFile(str(self.paths[number]), "rb")).schema
        source.seek(int(self.batch_offset[batch]))
        record_batch = pa.ipc.read_record_batch(pa.ipc.read_message(source), self._schema)
        out = {}
        for name in COLUMNS:
            array = record_batch.column(name)
            out[name] = (array.offsets.to_numpy(), array.values.to_numpy(zero_copy_only=False))
        return out

    def __getstate__(self):  # data-loader workers open the files again
        state = dict(self.__dict__)
        state["_files"] = {}
        return state
