"""``export.push_to_hub``: upload a task's standard export to the Hugging Face Hub.

The repository is ``export.hub_model_id`` with ``{task}`` replaced by the task's name; without
``{task}``, a run of several tasks appends ``-<task>`` (one repository per task: they would
otherwise overwrite each other), a run of one task uses the id as it is. (On the command line,
quote a value with braces for Hydra: ``'export.hub_model_id="me/shift-{task}"'``.) The upload is one
commit of the export's files with the card written for the Hub (its snippet loads the repository
id). Credentials are huggingface_hub's own (``HF_TOKEN`` or ``hf auth login``); the settings are
checked before any training (:func:`check_hub_settings`), the upload happens after the task's test.
"""

from __future__ import annotations

from pathlib import Path

TASK_FIELD = "{task}"


def check_hub_settings(export_cfg, tasks: list[str]) -> None:
    """Refuse, before anything runs, settings under which the uploads could not be made."""
    if export_cfg is None or not export_cfg.get("push_to_hub"):
        return
    if not export_cfg.get("standard", True):
        raise ValueError("export.push_to_hub uploads the standard export (<task>/model/): it needs export.standard=true")
    repo = export_cfg.get("hub_model_id")
    if not repo:
        raise ValueError("export.push_to_hub=true needs export.hub_model_id, the repository to create or update "
                         "(<user or organisation>/<name>; {task} is replaced by each task's name)")
    for task in tasks:
        if len(repo_id(repo, task, tasks).split("/")) != 2:
            raise ValueError(f"export.hub_model_id={repo!r} must be <user or organisation>/<name>")


def repo_id(template: str, task: str, tasks: list[str]) -> str:
    """The repository of ``task`` in a run of ``tasks`` (see the module docstring)."""
    if TASK_FIELD in template:
        return template.replace(TASK_FIELD, task)
    return f"{template}-{task}" if len(tasks) > 1 else template


def push_folder(folder: Path, repo: str, *, card: str, private: bool, commit_message: str) -> str:
    """Create ``repo`` (if new) and commit every file of ``folder``, with ``card`` as README.md;
    returns the commit's URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != "README.md")
    if not files:
        raise ValueError(f"{folder} holds no model files to upload")
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    api = HfApi()
    api.create_repo(repo_id=repo, private=private, exist_ok=True)
    commit = api.create_commit(repo_id=repo, operations=operations, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))
