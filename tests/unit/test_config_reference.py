"""docs/configuration.md is what ``python -m shiftlab.config_reference`` writes from conf/ and
shiftlab/config_schema.py: the committed page is current, lists every config file and every typed
setting, and the generator is deterministic."""

from __future__ import annotations

import dataclasses
import difflib
import typing

import pytest

from shiftlab import config_reference as ref


@pytest.fixture(scope="module")
def page() -> str:
    return ref.generate()


def test_the_committed_configuration_reference_is_current(page):
    current = ref.OUTPUT.read_text(encoding="utf-8") if ref.OUTPUT.is_file() else ""
    if current != page:
        diff = list(difflib.unified_diff(current.splitlines(), page.splitlines(), "docs/configuration.md (committed)",
                                         "docs/configuration.md (generated)", lineterm="", n=1))
        pytest.fail(f"docs/configuration.md is out of date: run `{ref.COMMAND}` and commit the result.\n"
                    + "\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else ""))


def test_the_page_is_deterministic(page):
    assert ref.generate() == page


def test_every_config_file_is_on_the_page(page):
    for path in sorted(ref.CONF.rglob("*.yaml")):
        assert f"`{path.relative_to(ref.ROOT).as_posix()}`" in page or path.name == "train.yaml", path


def test_every_typed_setting_is_on_the_page(page):
    def keys(prefix, schema):
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            key = f"{prefix}.{f.name}" if prefix else f.name
            if dataclasses.is_dataclass(hints[f.name]):
                yield from keys(key, hints[f.name])
            else:
                yield key

    found = [key for prefix, schema, _ in ref.SCHEMA_SECTIONS for key in keys(prefix, schema)]
    assert "pretrain.optim.schedule" in found and "seed" in found
    for key in found:
        assert f"| `{key}` |" in page, key


def test_a_typed_setting_shows_its_default_rule_and_comment(page):
    row = next(line for line in page.splitlines() if line.startswith("| `pretrain.optim.lr` |"))
    assert "`0.002`" in row and "Must be \\> 0." in row
    row = next(line for line in page.splitlines() if line.startswith("| `data.max_length` |"))
    assert "`128`" in row and "tokens per row, framing included" in row


def test_an_option_shows_its_header_and_its_keys_with_their_comments(page):
    section = page.split("### `finetune=lora`", 1)[1].split("\n### ", 1)[0]
    assert "`conf/finetune/lora.yaml`" in section
    assert "PEFT LoRA adapters on the attention projections" in section
    assert "```bash\nshiftlab-train finetune=lora finetune.optim.lr=1e-3\n```" in section
    assert "| `finetune.params.r` | `8` |" in section
    assert "| `finetune.params.target_modules` | `null` | null: the per-family default" in section


def test_the_check_option_says_when_the_file_is_stale(tmp_path, capsys):
    out = tmp_path / "configuration.md"
    assert ref.main(["--check", "--out", str(out)]) == 1
    assert ref.COMMAND in capsys.readouterr().err
    assert ref.main(["--out", str(out)]) == 0
    assert ref.main(["--check", "--out", str(out)]) == 0


@pytest.mark.parametrize("text, expected", [
    ("max_length and _target_", "max_length and \\_target\\_"),
    ("see <run>/x and `a_<b>_`", "see \\<run\\>/x and `a_<b>_`"),
    ("a | b * c", "a \\| b \\* c"),
])
def test_comment_prose_is_escaped_for_markdown(text, expected):
    assert ref.md_text(text) == expected


@pytest.mark.parametrize("line, expected", [
    ("a: 1  # one", ("a: 1", " one")),
    ("a: 'x # y'  # z", ("a: 'x # y'", " z")),
    ("a: ${x}#y", ("a: ${x}#y", None)),
    ("# all", ("", " all")),
])
def test_yaml_comments_are_found_outside_quotes(line, expected):
    assert ref.comment_of(line) == expected
