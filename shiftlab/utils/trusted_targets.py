"""Which classes a run directory's config may instantiate.

The corpus is built with ``hydra.utils.instantiate``
from ``data.corpus``, and instantiate calls whatever a ``_target_`` names, anywhere in the node:
the top, a nested mapping (instantiated first, ``_recursive_``), a ``_partial_`` one, an item of
``_args_`` or of any list. ``shiftlab-train`` trusts its config, which its user wrote (their own
command line may name their own classes): ``RunContext.build(..., trusted=True)``. ``shiftlab-eval
RUN_DIR`` reads ``RUN_DIR/config.yaml``, and run directories are passed between people, so a
config naming ``_target_: os.system`` would run it: :func:`shiftlab.evaluate.evaluate_run`
builds with ``trusted=False``, and :func:`check_corpus_targets` then refuses, before anything is
instantiated, every ``_target_`` of ``data.corpus`` (its values resolved, as instantiate resolves
them) that is not a string under an allowed prefix:

- ``shiftlab.``, always;
- the prefixes in ``$SHIFTLAB_ALLOWED_TARGETS``, comma-separated, for a user's own corpus
  classes: ``SHIFTLAB_ALLOWED_TARGETS=mypkg.,lab.corpora. shiftlab-eval RUN_DIR``.

A prefix matches whole dotted names (``mypkg.`` or ``mypkg`` allow ``mypkg`` and ``mypkg.x.Y``,
not ``mypkg_evil.Y``). The name must also *be* what it says: Hydra's locator follows attributes,
so ``shiftlab.utils.io.os.system`` would reach ``os.system`` through a module shiftlab imports.
The target is therefore located (importing only modules its allowed name spells out) and every
step must be the module its path names or an object defined under an allowed prefix (its
``__module__``); names with a ``__dunder__`` part are refused outright. A target that cannot be
located passes the check and fails in instantiate with Hydra's own error. The refusal is an
:class:`UntrustedTargetError` (a ``ValueError``) naming the key path, the target and how to allow
it.
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType
from typing import Any

from omegaconf import DictConfig, OmegaConf

ALLOWED_TARGETS_ENV = "SHIFTLAB_ALLOWED_TARGETS"
BUILTIN_TARGET_PREFIXES = ("shiftlab.",)


class UntrustedTargetError(ValueError):
    """A run directory's ``data.corpus`` names a ``_target_`` outside the allowed prefixes."""


def allowed_target_prefixes() -> tuple[str, ...]:
    """``shiftlab.`` and the comma-separated prefixes of ``$SHIFTLAB_ALLOWED_TARGETS``."""
    extra = [part.strip() for part in os.environ.get(ALLOWED_TARGETS_ENV, "").split(",")]
    return BUILTIN_TARGET_PREFIXES + tuple(part for part in extra if part.strip("."))


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether the dotted ``name`` lies under one of ``prefixes`` (matched at a dot)."""
    for prefix in prefixes:
        stem = prefix.rstrip(".")
        if stem and (name == stem or name.startswith(stem + ".")):
            return True
    return False


def _owner(obj: Any) -> str | None:
    """Where ``obj`` was defined: a module's own name, else its ``__module__`` (None if it has none)."""
    if isinstance(obj, ModuleType):
        return obj.__name__
    owner = getattr(obj, "__module__", None)
    return owner if isinstance(owner, str) else None


def _smuggled(target: str, prefixes: tuple[str, ...]) -> str | None:
    """Follow ``target`` as Hydra's locator does (``hydra._internal.utils._locate``: import the
    first part, then attributes, importing submodules where an attribute is missing), and say
    what it reaches outside ``prefixes``, if anything: a module re-exported under an allowed name
    (``shiftlab.utils.io.os``), or an object defined elsewhere. Imports only modules whose names
    are prefixes of ``target`` itself (so under an allowed prefix). None: nothing outside, or the
    target cannot be located (instantiate will say so)."""
    parts = target.split(".")
    try:
        obj = import_module(parts[0])
    except Exception:  # noqa: BLE001 - not importable: instantiate reports it
        return None
    for m in range(1, len(parts) + 1):
        spelled = ".".join(parts[:m])
        owner = _owner(obj)
        genuine = isinstance(obj, ModuleType) and obj.__name__ == spelled
        if not genuine and (owner is None or not _allowed(owner, prefixes)):
            if isinstance(obj, ModuleType):
                return f"{spelled!r} is the module {owner!r}"
            return f"{spelled!r} is a {type(obj).__name__} " + (f"defined in {owner!r}" if owner else "of no module")
        if m == len(parts):
            return None
        try:
            obj = getattr(obj, parts[m])
        except AttributeError:
            if not isinstance(obj, ModuleType):
                return None
            try:
                obj = import_module(".".join(parts[: m + 1]))
            except Exception:  # noqa: BLE001 - as _locate: instantiate reports it
                return None
    return None


def _refuse(path: str, target: Any, why: str, prefixes: tuple[str, ...], how: str | None = None) -> UntrustedTargetError:
    extra = ", ".join(prefixes[len(BUILTIN_TARGET_PREFIXES):]) or "unset"
    if how is None:
        package = target.split(".")[0] if isinstance(target, str) and target else "mypkg"
        how = (f"If you trust this run directory, allow its package: {ALLOWED_TARGETS_ENV}={package}. "
               f"(comma-separated prefixes)")
    return UntrustedTargetError(
        f"{path} is {target!r}, which {why}: a run directory's config may only instantiate targets under "
        f"{', '.join(BUILTIN_TARGET_PREFIXES)} or a prefix listed in ${ALLOWED_TARGETS_ENV} (now: {extra}). {how}")


def check_corpus_targets(cfg: DictConfig, prefixes: tuple[str, ...] | None = None) -> None:
    """Refuse (:class:`UntrustedTargetError`) every ``_target_`` in ``cfg.data.corpus`` that is
    not under an allowed prefix (:func:`allowed_target_prefixes`); instantiates nothing. See the
    module's docstring."""
    prefixes = allowed_target_prefixes() if prefixes is None else tuple(prefixes)
    node = cfg.data.corpus
    tree = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    _check_targets(tree, "data.corpus", prefixes)


def _check_targets(tree: Any, path: str, prefixes: tuple[str, ...]) -> None:
    if isinstance(tree, dict):
        if "_target_" in tree:
            where = f"{path}._target_"
            target = tree["_target_"]
            if not isinstance(target, str):
                raise _refuse(where, target, "is not a dotted name (a string)", prefixes,
                              "Write the target as a dotted name such as shiftlab.data.SyntheticCorpus.")
            if not _allowed(target, prefixes):
                raise _refuse(where, target, "is not under an allowed prefix", prefixes)
            if any(part.startswith("__") for part in target.split(".")):
                raise _refuse(where, target, "reaches through a __dunder__ attribute", prefixes,
                              "Name the class or function itself.")
            smuggled = _smuggled(target, prefixes)
            if smuggled:
                raise _refuse(where, target, f"resolves outside the allowed prefixes ({smuggled})", prefixes,
                              "Name the object where it is defined; if you trust that package, allow its prefix.")
        for key, value in tree.items():
            if key != "_target_":
                _check_targets(value, f"{path}.{key}", prefixes)
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            _check_targets(value, f"{path}[{index}]", prefixes)
