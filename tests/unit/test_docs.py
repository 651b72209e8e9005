"""The documents in docs/: every registered policy and objective is in the shift catalogue, every
docs/ path the code, the tests, the README, the docs and the experiments cite exists, with the
section it names, and every relative link of the README and of docs/ leads to a file (and a
heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shiftlab.models.objectives import OBJECTIVES
from shiftlab.shifts import POLICIES

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "shift_catalogue.md"
CONF = ROOT / "conf"

# Where docs are cited: code and tests (docstrings, comments), the README, the docs, the experiments' texts.
CITING = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "experiments").rglob("*.md")),
          *sorted((ROOT / "shiftlab").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py")),
          *sorted((ROOT / "benchmarks").rglob("*.py")), *sorted((ROOT / "benchmarks").rglob("*.md"))]
# A docs/ path, and the catalogue section after it when one is named ("docs/shift_catalogue.md, B.2").
CITATION = re.compile(r"(?<![\w/.-])((?:\.\./)*docs/[\w./-]+?\.md)(?:,?\s+(A|B(?:\.\d+)?)\b)?")


def catalogue_text() -> str:
    return CATALOGUE.read_text(encoding="utf-8")


def catalogue_sections() -> set[str]:
    """The labels of the catalogue's headings: ``## A. ...`` -> A, ``### B.2 ...`` -> B.2."""
    return {m.group(1) for m in re.finditer(r"^#+ ([A-Z](?:\.\d+)?)[. ]", catalogue_text(), re.M)}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_is_in_the_catalogue(name):
    assert f"`{name}`" in catalogue_text(), f"policy {name} is not described in {CATALOGUE.relative_to(ROOT)}"


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_is_in_the_catalogue(name):
    assert f"`{name}`" in catalogue_text(), f"objective {name} is not described in {CATALOGUE.relative_to(ROOT)}"


def test_every_shift_and_objective_config_is_in_the_catalogue():
    for group in ("shift", "objective"):
        for path in (CONF / group).glob("*.yaml"):
            assert f"`{path.stem}`" in catalogue_text(), f"{group}={path.stem} is not in the catalogue"


def test_the_catalogue_has_the_sections_the_code_cites():
    assert {"A", "B", "B.1", "B.2", "B.3", "B.4", "B.5"} <= catalogue_sections()


def citations() -> list[tuple[Path, str, str | None]]:
    found = []
    for path in CITING:
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            found.append((path, match.group(1), match.group(2)))
    return found


def test_the_citations_are_found():
    cited = {(path.relative_to(ROOT).as_posix(), target) for path, target, _ in citations()}
    assert ("shiftlab/shifts/policies.py", "docs/shift_catalogue.md") in cited
    assert ("README.md", "docs/shift_catalogue.md") in cited
    assert ("README.md", "docs/user_guide.md") in cited


def test_every_cited_doc_exists_with_its_section():
    for path, target, section in citations():
        where = path.relative_to(ROOT)
        resolved = (path.parent / target) if target.startswith("../") else ROOT / target
        assert resolved.resolve().is_file(), f"{where} cites {target}, which is not in the repository"
        if section is not None and resolved.resolve() == CATALOGUE.resolve():
            assert section in catalogue_sections(), f"{where} cites section {section} of {target}, which has none"


def test_nothing_cites_the_catalogue_outside_the_repository():
    for path in CITING:
        if path == Path(__file__).resolve():
            continue
        assert "SHIFT_CATALOGUE" not in path.read_text(encoding="utf-8"), f"{path.relative_to(ROOT)} cites SHIFT_CATALOGUE.md"


# Markdown pages whose relative links are checked: the front page and the docs.
LINKING = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (lower case, punctuation but - and _ dropped,
    spaces as -)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_the_readme_links_to_the_docs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("user_guide.md", "configuration.md", "experiments.md", "development.md", "shift_catalogue.md"):
        assert f"](docs/{page}" in text, page


@pytest.mark.parametrize("page", LINKING, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{page.relative_to(ROOT)} links to: " + ", ".join(broken)



def test_the_readme_is_a_front_page_with_the_ci_commands():
    """The README stays short (the rest is in docs/), and .ci/run finds its two commands: the first
    line of the code block right after each marker comment."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# shiftlab"
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: move the details into docs/"
    for marker in ("<!-- ci:main -->", "<!-- ci:tests -->"):
        at = lines.index(marker)
        assert lines[at + 1].startswith("```") and lines[at + 2].startswith("python3 -m venv .venv && "), marker
