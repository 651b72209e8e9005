"""The configuration reference, docs/configuration.md, generated from ``conf/`` and
:mod:`shiftlab.config_schema`.

    python -m shiftlab.config_reference            # (re)write docs/configuration.md
    python -m shiftlab.config_reference --check    # exit 1 if it is out of date

For every config group of ``conf/`` (in the order of ``conf/train.yaml``'s defaults list, then the
others by name), each option with the comment lines its file starts with and its keys and values,
as written (with the comments beside or above each key); and the typed settings of
``shiftlab/config_schema.py`` (the top-level keys, ``data``, ``pretrain``, ``finetune``) with their
types, defaults, rules and the comments of their fields. The output depends only on those files
(``tests/unit/test_config_reference.py`` checks that the committed page is current).

This module reads YAML with PyYAML and imports only :mod:`shiftlab.config_schema` (OmegaConf,
Hydra) of shiftlab: no torch.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import re
import sys
import textwrap
import tokenize
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml
from omegaconf import OmegaConf

from shiftlab import config_schema

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
OUTPUT = ROOT / "docs" / "configuration.md"
COMMAND = "python -m shiftlab.config_reference"
SCHEMA_FILE = Path(config_schema.__file__).resolve()

# The typed sections, in the order they are documented: (key prefix, dataclass, title).
SCHEMA_SECTIONS = [("", config_schema.RunConfig, "Top-level keys"),
                   ("data", config_schema.DataConfig, "`data`"),
                   ("pretrain", config_schema.PretrainConfig, "`pretrain`"),
                   ("finetune", config_schema.FinetuneConfig, "`finetune`"),
                   ("export", config_schema.ExportConfig, "`export`"),
                   ("probe", config_schema.ProbeConfig, "`probe`")]


# ------------------------------------------------------------------------------------ markdown


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def md_text(text: str) -> str:
    """``text`` (a comment's prose) for Markdown: code spans kept, elsewhere the characters that
    Markdown would read as markup escaped (emphasis, HTML tags, links, table cells)."""
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_escape(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape(text[last:]))
    return "".join(out)


def _escape(text: str) -> str:
    text = re.sub(r"([\\*<>\[\]|])", r"\\\1", text)
    # An underscore is emphasis only at a word's edge (GFM): max_length stays, _target_ is escaped.
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def md_line_start(line: str) -> str:
    """A prose line that Markdown would read as a list item, heading or quote, made plain text."""
    return re.sub(r"^(\s*)([-+#>=]|\d+[.)])(\s|$)", lambda m: m.group(1) + "\\" + m.group(2) + m.group(3), line)


def code(value: str) -> str:
    """``value`` as a code span (safe in a table cell)."""
    value = value.replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def cell(text: str) -> str:
    return md_text(" ".join(text.split()))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def comment_block(lines: List[str]) -> List[str]:
    """Comment lines (without their ``#``) as Markdown: prose as paragraphs, indented lines
    (commands) as code blocks."""
    out: List[str] = []
    chunk: List[str] = []
    kind = None

    def flush():
        nonlocal chunk, kind
        if chunk:
            if out:
                out.append("")
            if kind == "code":
                out.extend(["```bash", *textwrap.dedent("\n".join(chunk)).splitlines(), "```"])
            else:
                out.extend(md_line_start(md_text(line.strip())) for line in chunk)
        chunk, kind = [], None

    for line in lines:
        if not line.strip():
            flush()
            continue
        this = "code" if line.startswith("  ") else "text"
        if this != kind:
            flush()
            kind = this
        chunk.append(line)
    flush()
    return out


# ---------------------------------------------------------------------------------- yaml files


def comment_of(line: str) -> Tuple[str, Optional[str]]:
    """A YAML line split into its content and its comment (None without one); a ``#`` inside
    quotes or not after a space is not a comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"" and (i == 0 or line[i - 1] in " \t:[{,-"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1:]
    return line.rstrip(), None


def _strip_hash(comment: str) -> str:
    return comment[1:] if comment.startswith(" ") else comment


@dataclass
class Key:
    path: str
    value: str
    notes: List[str] = field(default_factory=list)


@dataclass
class Option:
    name: str
    file: Path
    header: List[str]
    package: Optional[str]
    keys: List[Key]


def read_option(path: Path, name: str) -> Option:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    header: List[str] = []
    package = None
    first_content = len(lines)
    for number, line in enumerate(lines):
        if line.startswith("#"):
            body = line[1:]
            match = re.match(r"\s*@package\s+(\S+)", body)
            if match:
                package = match.group(1)
            else:
                header.append(_strip_hash(body))
            continue
        first_content = number
        break
    header_end = first_content  # the header's comments are the option's, never its first key's
    node = yaml.compose(text)
    keys: List[Key] = []
    if isinstance(node, yaml.MappingNode):
        _walk(node, "", text, lines, header_end, keys)
    return Option(name=name, file=path, header=_trim(header), package=package, keys=keys)


def _trim(lines: List[str]) -> List[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _walk(node: yaml.MappingNode, prefix: str, text: str, lines: List[str], header_end: int, out: List[Key]) -> None:
    for key_node, value_node in node.value:
        path = f"{prefix}{key_node.value}"
        if isinstance(value_node, yaml.MappingNode) and not value_node.flow_style and value_node.value:
            out.extend(_notes_only(path, key_node, lines, header_end))
            _walk(value_node, path + ".", text, lines, header_end, out)
            continue
        first = key_node.start_mark.line
        last = value_node.end_mark.line
        if value_node.end_mark.column == 0 and last > first:
            last -= 1  # a block value ends at the start of the next line
        notes = _comments_above(lines, first, header_end)
        for number in range(first, last + 1):
            content, comment = comment_of(lines[number])
            if comment is not None and content.strip():
                notes.append(_strip_hash(comment).strip())
            elif comment is not None and number > first:
                notes.append(_strip_hash(comment).strip())
        out.append(Key(path=path, value=render(value_node, text), notes=[n for n in notes if n]))


def _notes_only(path: str, key_node: yaml.Node, lines: List[str], header_end: int) -> List[Key]:
    """A mapping key with comments of its own (above it, or beside it): kept as a row with no value."""
    line = key_node.start_mark.line
    notes = _comments_above(lines, line, header_end)
    _, comment = comment_of(lines[line])
    if comment is not None:
        notes.append(_strip_hash(comment).strip())
    notes = [n for n in notes if n]
    return [Key(path=path, value="", notes=notes)] if notes else []


def _comments_above(lines: List[str], line: int, header_end: int) -> List[str]:
    found: List[str] = []
    number = line - 1
    while number >= header_end and lines[number].lstrip().startswith("#"):
        found.append(_strip_hash(lines[number].lstrip()[1:]).strip())
        number -= 1
    return found[::-1]


def render(node: yaml.Node, text: str) -> str:
    """A YAML value as written (scalars verbatim, collections in flow style)."""
    if isinstance(node, yaml.ScalarNode):
        return " ".join(text[node.start_mark.index:node.end_mark.index].split())
    if isinstance(node, yaml.SequenceNode):  # a defaults list's {group: option} items without braces
        return "[" + ", ".join(render(item.value[0][0], text) + ": " + render(item.value[0][1], text)
                               if isinstance(item, yaml.MappingNode) and len(item.value) == 1 and not item.flow_style
                               else render(item, text) for item in node.value) + "]"
    return "{" + ", ".join(f"{render(k, text)}: {render(v, text)}" for k, v in node.value) + "}"


# --------------------------------------------------------------------------------------- groups


@dataclass
class Group:
    name: str  # conf-relative path: "backbone", "experiment/order_objectives/rows"
    options: List[Option]
    included_as: List[str]  # how other configs name it in their defaults lists ("/trainer_common/lightning@_here_")


def defaults_entries(path: Path) -> List[str]:
    """The entries of a config file's defaults list, as written ("override /logger: none")."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("defaults", []) if isinstance(data, dict) else []
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            out.extend(f"{k}: {v}" if v is not None else f"{k}: null" for k, v in entry.items())
        else:
            out.append(str(entry))
    return out


def _group_of_entry(entry: str) -> Optional[Tuple[str, str]]:
    """A defaults entry's (group path, how it names it), or None for _self_ and the schema."""
    head = entry.split(":", 1)[0].strip()
    head = re.sub(r"^override\s+", "", head)
    if ":" not in entry:  # "/trainer_common/lightning@_here_": a group/option without a key
        name = head.split("@", 1)[0].strip("/")
        if "/" not in name:
            return None
        return name.rsplit("/", 1)[0], entry
    return head.split("@", 1)[0].strip("/"), entry


def groups(conf: Path = CONF) -> Tuple[List[Group], List[str]]:
    """conf/'s groups, in the entry config's order then by name, and that defaults list."""
    files = sorted(conf.rglob("*.yaml"))
    referenced: Dict[str, List[str]] = {}
    for path in files:
        for entry in defaults_entries(path):
            found = _group_of_entry(entry)
            if found is None:
                continue
            referenced.setdefault(found[0], [])
            if path.parent != conf and not entry.startswith("override") and entry not in referenced[found[0]]:
                referenced[found[0]].append(entry)
    directories = sorted({p.parent.relative_to(conf).as_posix() for p in files if p.parent != conf})
    group_dirs = [d for d in directories if "/" not in d or d in referenced]

    def owner(directory: str) -> str:
        while directory not in group_dirs:
            directory = directory.rsplit("/", 1)[0]
        return directory

    options: Dict[str, List[Option]] = {d: [] for d in group_dirs}
    for path in files:
        if path.parent == conf:
            continue
        directory = path.parent.relative_to(conf).as_posix()
        group = owner(directory)
        name = path.relative_to(conf / group).with_suffix("").as_posix()
        options[group].append(read_option(path, name))
    entry_order = [g for g, _ in (_group_of_entry(e) or ("", "") for e in defaults_entries(conf / "train.yaml"))]
    order = {g: i for i, g in enumerate(entry_order)}
    ordered = sorted(group_dirs, key=lambda g: (order.get(g.split("/")[0], len(order)), g))
    result = [Group(g, sorted(options[g], key=lambda o: o.name), referenced.get(g, [])) for g in ordered]
    return result, defaults_entries(conf / "train.yaml")


# ------------------------------------------------------------------------------- typed settings


def _field_comments(source: str) -> Dict[Tuple[str, str], List[str]]:
    """(class name, field name) -> the comment lines above the field and beside it."""
    comments: Dict[int, str] = {}
    own_line: Dict[int, bool] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string[1:].strip()
            own_line[token.start[0]] = not token.line[:token.start[1]].strip()
    found: Dict[Tuple[str, str], List[str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                above, number = [], item.lineno - 1
                while own_line.get(number):
                    above.append(comments[number])
                    number -= 1
                beside = [comments[n] for n in range(item.lineno, item.end_lineno + 1)
                          if n in comments and not own_line[n]]
                found[(node.name, item.target.id)] = above[::-1] + beside
    return found


def type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(type_name(a) for a in args) + " or null"
    if annotation is Any:
        return "any"
    if dataclasses.is_dataclass(annotation) or typing.get_origin(annotation) in (dict, Dict):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def default_text(node: Any, name: str) -> str:
    if OmegaConf.is_missing(node, name):
        return "??? (required)"
    value = OmegaConf.to_container(node, resolve=False)[name]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def schema_rows(prefix: str, schema: type, comments: Dict[Tuple[str, str], List[str]],
                defaults: Any = None) -> List[Tuple[str, str, str, str]]:
    """(key, type, default, what it is) for every leaf of ``schema``, nested sections expanded."""
    defaults = OmegaConf.structured(schema) if defaults is None else defaults
    hints = typing.get_type_hints(schema)
    rows = []
    for f in dataclasses.fields(schema):
        key = f"{prefix}.{f.name}" if prefix else f.name
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            rows.extend(schema_rows(key, annotation, comments, defaults[f.name]))
            continue
        notes = " ".join(comments.get((schema.__name__, f.name), []))
        rule = config_schema.rule_for(key)
        if rule is not None:
            notes = (notes.rstrip(".") + ". " if notes else "") + f"Must be {rule.text}."
        rows.append((key, type_name(annotation), default_text(defaults, f.name), notes))
    return rows


def _docstring(schema: type) -> str:
    """A dataclass's docstring as Markdown (reST roles and double backticks made plain)."""
    text = " ".join((schema.__doc__ or "").split())
    return re.sub(r":\w+:`", "`", text).replace("``", "`")


# -------------------------------------------------------------------------------------- the page


def generate(conf: Path = CONF) -> str:
    """docs/configuration.md's text."""
    all_groups, entry_defaults = groups(conf)
    out: List[str] = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{COMMAND}` from conf/ and shiftlab/config_schema.py: edit those, then run it",
        "again (tests/unit/test_config_reference.py fails while this page is out of date). -->",
        "",
        "Every part of a run is a config group of `conf/`, chosen on the command line with",
        "`group=option` (`shiftlab-train backbone=tiny_gpt2`); any key is overridden with its dotted",
        "path (`shiftlab-train shift.params.rate=0.3`). `shiftlab-train --cfg job` prints the composed",
        "config. This page lists the entry config, the typed settings with their defaults, and every",
        "option of every group with the comments of its file and its keys as written there.",
        "",
        "- [The entry config: `conf/train.yaml`](#the-entry-config-conftrainyaml)",
        "- [Typed settings: `shiftlab/config_schema.py`](#typed-settings-shiftlabconfig_schemapy)",
    ]
    for group in all_groups:
        out.append(f"- [`{group.name}`](#{slug(group.name)}): " + ", ".join(f"`{o.name}`" for o in group.options))
    out += ["", "## The entry config: `conf/train.yaml`", ""]
    train = read_option(conf / "train.yaml", "train")
    out += comment_block(train.header)
    out += ["", "Its defaults list, in order (later entries override earlier ones):", "",
            "| entry | note |", "|---|---|"]
    notes = _defaults_notes(conf / "train.yaml")
    for entry in entry_defaults:
        out.append(f"| {code(entry)} | {cell(notes.get(entry, ''))} |")
    trailing = [k for k in train.keys if k.path != "defaults"]
    if trailing:
        out += ["", "| key | value | note |", "|---|---|---|"]
        out += [f"| {code(k.path)} | {code(k.value) if k.value else ''} | {cell(' '.join(k.notes))} |" for k in trailing]
    tail = _trailing_comments(conf / "train.yaml")
    if tail:
        out += [""] + comment_block(tail)

    out += ["", "## Typed settings: `shiftlab/config_schema.py`", "",
            "These keys are typed: a misspelt key or a value of the wrong type stops `shiftlab-train`",
            "before anything runs. Their defaults are the ones below, unless a config file of a group",
            "(above all `data=`, `experiment=`, `debug=`) sets them.",
            ""]
    comments = _field_comments(SCHEMA_FILE.read_text(encoding="utf-8"))
    for prefix, schema, title in SCHEMA_SECTIONS:
        out += [f"### {title}", "", md_text(_docstring(schema)), "",
                "| key | type | default | what it is |", "|---|---|---|---|"]
        for key, kind, default, notes in schema_rows(prefix, schema, comments):
            out.append(f"| {code(key)} | {kind} | {code(default)} | {cell(notes)} |")
        out.append("")

    for group in all_groups:
        out += _group_section(group, conf)
    return "\n".join(out).rstrip() + "\n"


def _defaults_notes(path: Path) -> Dict[str, str]:
    """A defaults list entry -> the comment beside it."""
    notes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        content, comment = comment_of(line)
        match = re.match(r"\s*-\s+(.*)", content)
        if match and comment is not None:
            notes[match.group(1).strip()] = _strip_hash(comment).strip()
    return notes


def _trailing_comments(path: Path) -> List[str]:
    """The comment lines after a file's last content line (conf/train.yaml's notes on its settings)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tail: List[str] = []
    for line in reversed(lines):
        if line.startswith("#"):
            tail.append(_strip_hash(line[1:]))
        elif line.strip():
            break
        else:
            tail.append("")
    return _trim(tail[::-1])


def _group_section(group: Group, conf: Path) -> List[str]:
    out = [f"## `{group.name}`", ""]
    here = [e for e in group.included_as if "@_here_" in e]
    if here:
        line = (f"`conf/{group.name}/`, included by other configs' defaults lists as "
                + ", ".join(code(e) for e in here) + ": its keys go where it is included.")
    else:
        line = f"`conf/{group.name}/`, chosen with `{group.name}=<option>`"
        if group.included_as:
            line += " (other configs' defaults lists name it: " + ", ".join(code(e) for e in group.included_as) + ")"
        line += ". Keys are shown by their full path, as a command line overrides them."
    out += [line, ""]
    for option in group.options:
        title = f"{group.name}/{option.name}" if here else f"{group.name}={option.name}"
        out += [f"### `{title}`", ""]
        where = f"`{option.file.relative_to(conf.parent).as_posix()}`"
        if option.package:
            where += f" (`@package {option.package}`)"
        out += [where, ""]
        if option.header:
            out += comment_block(option.header) + [""]
        if option.keys:
            out += ["| key | value | note |", "|---|---|---|"]
            prefix = _package_prefix(group, option, bool(here))
            for key in option.keys:
                value = code(key.value) if key.value else ""
                path = key.path if key.path == "defaults" else prefix + key.path
                out.append(f"| {code(path)} | {value} | {cell(' '.join(key.notes))} |")
            out.append("")
    return out


def _package_prefix(group: Group, option: Option, included_here: bool) -> str:
    """What an option's keys sit under in the composed config ("" for _global_ and @_here_)."""
    if included_here or option.package == "_global_":
        return ""
    package = option.package or group.name.replace("/", ".")
    return package + "."


# ------------------------------------------------------------------------------------------ cli


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write (default: docs/configuration.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != text:
            print(f"{args.out} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        print(f"{args.out} is current")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
