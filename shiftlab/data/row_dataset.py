"""A torch ``Dataset`` over the framed rows of a built corpus (:mod:`shiftlab.data.corpus_cache`).

Items look like :class:`~shiftlab.data.collate.EncodedDataset`'s (``sample_id``, ``epoch``,
``input_ids``, ``word_ids``, ``sentence_ids``), so :class:`~shiftlab.data.collate.ShiftCollator`
reads both alike. A batch is fetched in one call (``__getitems__``, which the DataLoader uses):
one Arrow ``take`` of the batch's rows from the memory-mapped files, split into per-row tensors
without a Python loop over tokens.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

COLUMNS = ("input_ids", "word_ids", "sentence_ids")


class RowDataset(Dataset):
    def __init__(self, rows):
        self.rows = rows  # a datasets.Dataset (memory-mapped Arrow)
        self._arrow = rows.with_format("arrow")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys) -> list[dict]:
        pairs = [key if isinstance(key, tuple) else (0, key) for key in keys]
        indices = [int(index) for _, index in pairs]
        table = self._arrow[indices]
        columns = {name: _split_list_column(table.column(name)) for name in COLUMNS}
        return [
            {"sample_id": index, "epoch": epoch, **{name: columns[name][i] for name in COLUMNS}}
            for i, (epoch, index) in enumerate(pairs)
        ]

    def __getstate__(self):  # data-loader workers re-open the memory-mapped files
        return {"rows": self.rows}

    def __setstate__(self, state):
        self.__init__(state["rows"])


def _split_list_column(column) -> list[torch.Tensor]:
    """A list<int> Arrow column -> one int64 tensor per row."""
    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    offsets = array.offsets.to_numpy()
    values = array.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    flat = torch.from_numpy(values.astype(np.int64))
    return list(torch.split(flat, np.diff(offsets).tolist()))
