"""``trainer.compile``: ``torch.compile`` of the modules that do the work, in place.

``nn.Module.compile`` (rather than wrapping with ``torch.compile(module)``) keeps every module
where it was and its state-dict keys unchanged, so checkpoints and ``save_pretrained`` exports
are the same with and without compilation. What is compiled: the backbone's stacks (the encoder
and/or decoder that ``Backbone.hidden`` / ``decode`` call, and the vocabulary head) and each
objective's or task's head; the glue between them (selecting target positions, the loss) stays
eager. Shapes that change from batch to batch (unpacked rows, the number of targets) are traced
once more and then compiled as dynamic, as ``torch.compile`` does by default.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn


def compile_modules(groups: Iterable[Iterable[nn.Module]], options: dict) -> list[nn.Module]:
    """Compile every module of ``groups`` in place with ``torch.compile`` arguments ``options``."""
    compiled = []
    for group in groups:
        for module in group:
            if module is not None and not any(module is done for done in compiled):
                module.compile(**options)
                compiled.append(module)
    return compiled
