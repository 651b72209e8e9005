"""Find and read runs: what ``shiftlab-train`` leaves in a run directory, and W&B offline runs.

A *run directory* is any directory holding a ``config.yaml`` (the resolved config of the run):
the job directories of a sweep (``<sweep_dir>/<num>_<suffix>/``) and the directory of a single
run alike. :func:`collect_runs` searches every given path recursively for them, but never looks
inside a run directory for more runs (its ``.hydra/config.yaml`` and stage folders are part of
it), and skips hidden directories and symbolic links. What a run left decides its status:

* ``metrics.json`` -> ``completed`` (its numbers are used, with ``probe_metrics.json``'s when
  ``shiftlab-probe`` left one);
* ``failure.json`` (or ``run_info.json`` with ``"status": "failed"``) -> ``failed``;
* neither -> ``incomplete`` (killed, or still running).

A W&B offline run directory (``wandb/offline-run-*``, with ``files/config.yaml`` and
``files/wandb-summary.json``) found on the way is read too; see :func:`read_wandb_run`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shiftlab.utils.run_layout import RunLayout

__all__ = [
    "COMPLETED",
    "FAILED",
    "INCOMPLETE",
    "MISSING",
    "Run",
    "TableError",
    "collect_runs",
    "describe_missing_key",
    "flatten",
    "is_non_finite",
    "lookup",
    "natural_key",
    "read_run",
    "read_wandb_run",
]

COMPLETED, FAILED, INCOMPLETE = "completed", "failed", "incomplete"

#: Files that name their run directory when given as a path.
RUN_FILES = RunLayout.RECORD_FILES

_WANDB_RUN = re.compile(r"^(offline-)?run-\d{8}_\d{6}-\w+$")


class TableError(Exception):
    """A problem with what was asked for or found; ``shiftlab-table`` prints it and exits with 2."""


class _Missing:
    """The value of a config key a run does not have (shown as ``—``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Run:
    """One run: where it is, its config, its status and (when completed) its metrics."""

    path: Path
    label: str  #: short name for tables and messages (the path relative to the given paths)
    config: dict[str, Any]
    status: str  #: ``completed`` | ``failed`` | ``incomplete``
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  #: run_info.json ({} when absent)
    failure: dict[str, Any] | None = None  #: failure.json
    detail: str = ""  #: one line: why the run failed or is incomplete
    source: str = "shiftlab"  #: ``shiftlab`` or ``wandb``

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    def get(self, key: str, default: Any = MISSING) -> Any:
        """The value of the dotted config key ``key`` (``shift.params.rate``), or ``default``."""
        return lookup(self.config, key, default)


#: How JSON writers spell the non-finite numbers as strings (Python's json writes them bare:
#: ``NaN``, ``Infinity``, ``-Infinity``, which it reads back as floats).
_NON_FINITE_STRINGS = frozenset({"nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def is_non_finite(value: Any) -> bool:
    """Whether a metric's value is NaN or infinite: a float, or a string such as ``"NaN"`` or
    ``"Infinity"`` (how some JSON writers spell them)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower() in _NON_FINITE_STRINGS


def lookup(config: Any, key: str, default: Any = MISSING) -> Any:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def describe_missing_key(config: dict[str, Any], key: str) -> str:
    """Where the dotted ``key`` stops matching ``config``, and which keys are there instead."""
    node: Any = config
    done: list[str] = []
    for part in key.split("."):
        if not isinstance(node, dict):
            return f"{'.'.join(done)} is a value ({node!r}), not a mapping"
        if part not in node:
            where = f"under {'.'.join(done)!r}" if done else "at the top level"
            keys = ", ".join(sorted(map(str, node))) or "(none)"
            return f"{part!r} is not a key {where}; keys there: {keys}"
        done.append(part)
        node = node[part]
    return "it is there"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, in the config's order. Empty mappings give no key;
    lists are values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``2_x`` before ``10_x``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object in ``path``, "") or (None, why it could not be read)."""
    try:
        loaded = _read_json(path)
    except (OSError, ValueError) as exc:
        return None, f"{path.name} unreadable ({_first_line(exc)})"
    if not isinstance(loaded, dict):
        return None, f"{path.name} is not a JSON object"
    return loaded, ""


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise TableError(f"{path}: cannot read the config: {exc}") from exc
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TableError(f"{path}: not a mapping (a run's config.yaml holds its resolved config)")
    return config


def _first_line(text: Any, limit: int = 200) -> str:
    lines = str(text).strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def read_run(path: str | Path, label: str | None = None) -> Run:
    """Read the shiftlab run directory ``path`` (see the module docstring for the statuses)."""
    path = Path(path)
    layout = RunLayout(path)
    config = _read_config(layout.config)
    info: dict[str, Any] = {}
    info_note = ""
    if layout.run_info.is_file():
        try:
            loaded = _read_json(layout.run_info)
            info = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as exc:
            info_note = f"; run_info.json unreadable ({exc})"
    run = Run(path=path, label=label or path.name, config=config, status=INCOMPLETE, info=info)

    if layout.metrics.is_file():
        metrics, run.detail = _read_json_object(layout.metrics)
        if metrics is not None:
            run.status, run.metrics = COMPLETED, {**metrics, **_probe_metrics(layout)}
        return run

    if layout.failure.is_file():
        run.status = FAILED
        try:
            failure = _read_json(layout.failure)
        except (OSError, ValueError) as exc:
            run.detail = f"failure.json unreadable ({_first_line(exc)})"
            return run
        run.failure = failure if isinstance(failure, dict) else {"message": failure}
        stage = run.failure.get("stage")
        error = run.failure.get("error") or "error"
        message = _first_line(run.failure.get("message", ""))
        run.detail = f"stage {stage}: {error}" + (f": {message}" if message else "")
        return run

    if info.get("status") == "failed":  # failure.json could not be written
        run.status = FAILED
        run.detail = f"stage {info.get('stage')}: {_first_line(info.get('error', 'error'))} (from run_info.json)"
        return run

    if info:
        status = info.get("status")
        run.detail = f"neither metrics.json nor failure.json; run_info.json status: {status}"
    else:
        run.detail = "neither metrics.json nor failure.json, and no run_info.json"
    run.detail += info_note
    return run


def _probe_metrics(layout: RunLayout) -> dict[str, Any]:
    """``shiftlab-probe``'s means (``<task>/probe/<condition>/<metric>``), read with the run's
    metrics; an unreadable file is left out (the run's own metrics still count)."""
    if not layout.probe_metrics.is_file():
        return {}
    probe, _ = _read_json_object(layout.probe_metrics)
    return probe or {}


def _unwrap_wandb_config(raw: dict[str, Any]) -> dict[str, Any]:
    """W&B's config.yaml wraps every top-level value (``key: {desc: null, value: ...}``) and adds
    ``wandb_version`` and ``_wandb``."""
    config = {}
    for key, value in raw.items():
        if key in ("wandb_version", "_wandb"):
            continue
        if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
            value = value["value"]
        config[key] = value
    return config


_STAGE_PREFIX = re.compile(r"^([^/\-]+)-([^/]+/.+)$")


def _normalize_wandb_key(key: str) -> str:
    """Lightning's WandbLogger joins its prefix with ``-`` (``order-test/acc``); metrics.json
    uses ``/`` (``order/test/acc``)."""
    match = _STAGE_PREFIX.match(key)
    return f"{match.group(1)}/{match.group(2)}" if match else key


def read_wandb_run(path: str | Path, label: str | None = None) -> Run:
    """Read a W&B offline run directory (``.../wandb/offline-run-<date>_<time>-<id>``).

    The config is ``files/config.yaml`` (unwrapped from W&B's ``{value: ...}`` layout), the
    metrics are the numbers of ``files/wandb-summary.json`` (keys starting with ``_`` dropped,
    ``<stage>-<split>/<name>`` renamed ``<stage>/<split>/<name>``). Without a summary the run is
    ``incomplete``; W&B files do not say whether a run failed.
    """
    path = Path(path)
    files = path / "files"
    config: dict[str, Any] = {}
    if (files / "config.yaml").is_file():
        config = _unwrap_wandb_config(_read_config(files / "config.yaml"))
    run = Run(path=path, label=label or path.name, config=config, status=INCOMPLETE, source="wandb")
    summary_path = files / "wandb-summary.json"
    if not summary_path.is_file():
        run.detail = "W&B run without files/wandb-summary.json"
        return run
    summary, run.detail = _read_json_object(summary_path)
    if summary is None:
        return run
    run.status = COMPLETED
    run.metrics = {
        _normalize_wandb_key(key): value
        for key, value in summary.items()
        if not key.startswith("_") and (isinstance(value, (int, float)) and not isinstance(value, bool)
                                        or is_non_finite(value))
    }
    return run


def _run_kind(directory: Path) -> str | None:
    if RunLayout(directory).config.is_file():
        return "shiftlab"
    if _WANDB_RUN.match(directory.name) and (directory / "files").is_dir():
        return "wandb"
    return None


def _find_run_dirs(directory: Path) -> Iterator[tuple[str, Path]]:
    kind = _run_kind(directory)
    if kind is not None:
        yield kind, directory
        return
    try:
        children = [child for child in directory.iterdir()
                    if not child.name.startswith(".") and not child.is_symlink() and child.is_dir()]
    except OSError:
        return
    for child in sorted(children, key=lambda child: natural_key(child.name)):
        yield from _find_run_dirs(child)


def collect_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run under ``paths`` (sweep directories, run directories, W&B offline runs, or
    directories holding them), in a stable order: the paths' order, then by directory name
    (numbers numerically). A run reached twice (overlapping paths) is counted once.

    Raises :class:`TableError` for a path that does not exist or holds no run.
    """
    roots: list[Path] = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise TableError(f"{given}: no such file or directory")
        if root.is_file():
            if root.name not in RUN_FILES:
                raise TableError(f"{given}: not a directory (give a sweep directory or a run directory)")
            root = root.parent
        roots.append(root)
    if not roots:
        raise TableError("no paths given")
    resolved = [root.resolve() for root in roots]
    common = Path(os.path.commonpath([str(r) for r in resolved]))

    runs: list[Run] = []
    seen: set[Path] = set()
    for root, real in zip(roots, resolved):
        found = list(_find_run_dirs(real))
        if not found:
            raise TableError(
                f"{root}: no runs found (no directory with a config.yaml, nor a W&B offline run, in it)"
            )
        for kind, directory in found:
            if directory in seen:
                continue
            seen.add(directory)
            label = directory.name if directory == common else directory.relative_to(common).as_posix()
            reader = read_run if kind == "shiftlab" else read_wandb_run
            runs.append(reader(directory, label))
    return runs
