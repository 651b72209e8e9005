"""Exports that the ecosystem loads: each fine-tuned task as a standard transformers directory
(``AutoModelFor<Task>`` / ``AutoPeftModelFor<Task>``, pipelines), with its tokenizer, model card
and, on request, its upload to the Hugging Face Hub. See docs/exports.md.

    targets   which transformers class computes what a module does (or why none does)
    standard  writing <task>/model/ and checking it against the module
    base_ref  the base under a PEFT adapter: exported where needed, named portably
    card      the model cards (README.md)
    hub       export.push_to_hub
    task      the stage's entry points: export_task, publish_task
"""

from .task import TaskExport, export_task, publish_task

__all__ = ["TaskExport", "export_task", "publish_task"]
