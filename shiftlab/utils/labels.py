"""The label value that no loss or metric counts: ``-100``, PyTorch's ``cross_entropy`` default
``ignore_index`` and the value transformers' collators and models use for the same purpose."""

IGNORE_INDEX = -100
