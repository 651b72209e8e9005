"""Warnings from the libraries shiftlab runs on that say nothing about the user's run, silenced by
default; ``SHIFTLAB_UPSTREAM_WARNINGS=1`` shows them all again.

Each entry says why it is noise here. Anything not listed (a new warning, any warning about the
user's own settings) is shown as before.
"""

from __future__ import annotations

import os
import warnings

ENV = "SHIFTLAB_UPSTREAM_WARNINGS"

# (message regex, why it does not concern the run)
KNOWN: tuple[tuple[str, str], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning's own use of a torch API that torch 2.13 deprecates; nothing a user can change"),
    (r"Checkpoint directory .* exists and is not empty",
     "a resumed stage writes into its own checkpoint directory, as it should"),
    (r"`ModelCheckpoint\(monitor='val/loss'\)` could not find the monitored key",
     "a stage that ends (max_steps) before its first validation keeps no best checkpoint; its last.ckpt and "
     "final metrics are written as usual"),
    (r"The number of training batches \(\d+\) is smaller than the logging interval",
     "short runs (debug modes, tests) log at their end"),
    (r"The following rank_pattern keys did not match any targeted module and were ignored: \[[^\]]*lora_E",
     "PEFT matches rank_pattern keys against module names, but AdaLoRA's keys name its lora_E parameters "
     "(<module>.lora_E): a false alarm on every AdaLoRA reload; the ranks are applied (the export check "
     "compares the reloaded model's outputs)"),
    (r"`is_gradient_checkpointing` is deprecated",
     "PEFT reads transformers' deprecated attribute whenever it wraps a model (LoRA on SmolLM2, say); nothing a "
     "user can change"),
)


def silence_known_upstream_warnings() -> None:
    """Ignore :data:`KNOWN`, unless ``$SHIFTLAB_UPSTREAM_WARNINGS`` is set to 1 / true / yes."""
    if os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    for message, _why in KNOWN:
        warnings.filterwarnings("ignore", message=message)
