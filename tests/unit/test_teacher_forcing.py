"""shift_right must equal transformers' shift_tokens_right exactly, -100 handling included."""

import pytest
import torch
from transformers.models.bart.modeling_bart import shift_tokens_right

from shiftlab.shifts import shift_right


@pytest.mark.parametrize("seed", range(5))
def test_shift_right_equals_transformers(seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(3, 50, (6, 11), generator=g)
    lengths = torch.randint(1, 12, (6,), generator=g)
    labels[torch.arange(11) >= lengths.unsqueeze(1)] = -100  # padded label positions
    labels[0, 3] = -100  # an ignored position inside the sequence
    ours = shift_right(labels, pad_token_id=1, decoder_start_token_id=2)
    assert torch.equal(ours, shift_tokens_right(labels, 1, 2))
    assert (ours != -100).all()
    assert (ours[:, 0] == 2).all()
    assert torch.equal(ours[:, 1:][labels[:, :-1] != -100], labels[:, :-1][labels[:, :-1] != -100])


def test_shift_right_does_not_modify_labels():
    labels = torch.tensor([[5, 6, -100]])
    shift_right(labels, 0, 2)
    assert labels.tolist() == [[5, 6, -100]]


def test_shift_right_needs_ids():
    with pytest.raises(ValueError, match="pad_token_id"):
        shift_right(torch.tensor([[1, 2]]), None, 0)
