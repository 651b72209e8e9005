"""Every ``shiftlab-train`` command written in an experiments/<name>/README.md composes and passes
the schema, for every value of each of its sweeps (each value once, the other sweeps at their first
value). The miniature test in tests/integration/test_paper_experiments.py runs each README's main
sweep; this one keeps the other tiers' commands (few labels, frozen, references, GPU) true too,
without running them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import shiftlab.config  # noqa: F401  (registers the schema and resolvers)
from shiftlab.config_schema import compose_checked
from shiftlab.train import _preflight_jobs

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


def readme_commands() -> list[tuple[str, str]]:
    """(folder name, command) for each shiftlab-train line in a bash block of an experiment README."""
    found = []
    for readme in sorted((ROOT / "experiments").glob("*/README.md")):
        for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            found += [(readme.parent.name, line.strip()) for line in joined.splitlines()
                      if line.strip().startswith("shiftlab-train")]
    return found


def command_overrides(command: str) -> list[str]:
    """The command's overrides, without ``-m`` and the ``hydra.*`` settings (run directories)."""
    return [w for w in shlex.split(command)[1:] if w not in ("-m", "--multirun") and not w.startswith("hydra.")]


COMMANDS = readme_commands()


def test_the_readmes_have_commands():
    assert {folder for folder, _ in COMMANDS} >= {"shuffle_locality", "order_objectives", "ner_report"}
    assert any("few_labels" in command for _, command in COMMANDS)


@pytest.mark.parametrize("folder,command", COMMANDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(COMMANDS)])
def test_every_readme_command_composes(folder, command):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        # the compositions shiftlab-train's own preflight makes: each value of every sweep once
        jobs = _preflight_jobs(command_overrides(command), GlobalHydra.instance().config_loader())
        assert jobs and all(any(o.startswith("experiment=") for o in job) for job in jobs), command
        for overrides in jobs:
            try:
                compose_checked("train", overrides)
            except Exception as error:  # name the README and the job in the failure
                pytest.fail(f"experiments/{folder}/README.md: {' '.join(overrides)}: {error}")
