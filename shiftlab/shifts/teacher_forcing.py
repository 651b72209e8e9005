"""Shift-right for teacher forcing (docs/shift_catalogue.md, A): never an experimental variable."""

from __future__ import annotations

import torch

from shiftlab.utils.labels import IGNORE_INDEX


def shift_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: ``[start, y1 .. y(n-1)]``, with every ``-100`` replaced by the pad id.

    Identical to transformers' ``shift_tokens_right`` (BART, T5, encoder-decoder models).
    """
    if pad_token_id is None:
        raise ValueError("shift_right needs a pad_token_id (the model config's pad_token_id is not set)")
    if decoder_start_token_id is None:
        raise ValueError("shift_right needs a decoder_start_token_id (the model config's decoder_start_token_id is not set)")
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == IGNORE_INDEX, pad_token_id)
