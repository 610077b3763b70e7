"""The README is a user's guide, and the documents it links stay inside the repository.

Measured facts live in docs/measurements.md and how they are measured in
docs/methods.md; the README says what a user does. These checks keep it so:
a bounded length, no dated measurement in it, and every relative link (in the
README and in docs/) pointing at a file, and a heading, that a fresh clone
has.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 300

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, file: ...


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and image outside code blocks."""
    return [(number, match.group(1)) for number, line in prose_lines(path) for match in LINK.finditer(line)]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = anchor(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_the_readme_is_a_guide_of_bounded_length():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, (
        f"README.md has {count} lines, more than {MAX_README_LINES}: move measurements to "
        "docs/measurements.md and how figures are measured to docs/methods.md")


def test_the_readme_holds_no_dated_measurement():
    found = [f"README.md:{number}: {line.strip()}"
             for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1)
             if DATE.search(line) or "measured here" in line.lower()]
    assert not found, ("dated measurements belong in docs/measurements.md, with their machine and "
                       "command:\n" + "\n".join(found))


@pytest.mark.parametrize("document", ["docs/methods.md", "docs/measurements.md"])
def test_the_readme_links_the_reference_documents(document):
    assert (REPO / document).is_file(), f"{document} is missing"
    targets = {unquote(target.partition("#")[0]) for _, target in links(README)}
    assert document in targets, f"README.md does not link {document}"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(path):
    problems = []
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.is_relative_to(REPO):
            problems.append(f"{where}: points outside the repository")
        elif not linked.exists():
            problems.append(f"{where}: no such file in the repository")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            problems.append(f"{where}: {linked.relative_to(REPO)} has no heading #{fragment}")
    assert not problems, "\n".join(problems)


def test_the_link_checks_see_what_they_should(tmp_path):
    """The helpers themselves: links in code blocks are not links; anchors follow GitHub's rule."""
    page = tmp_path / "page.md"
    page.write_text("# The `kbench` command\n\n[a](x.md#b) ![p](img.png)\n```sh\n[not](a-link.md)\n# not a heading\n```\n"
                    "## Options\n## Options\n## 9. Each backend's knobs (two)\n")
    assert [target for _, target in links(page)] == ["x.md#b", "img.png"]
    assert anchors(page) == {"the-kbench-command", "options", "options-1", "9-each-backends-knobs-two"}


# -- the README's options table is the option table's ---------------------------------------------------
def readme_option_flags() -> set[str]:
    """Every ``--flag`` named in the first column of the README's Options table."""
    section = README.read_text(encoding="utf-8").split("## Options", 1)[1].split("\n## ", 1)[0]
    return {flag for line in section.splitlines() if line.startswith("| `")
            for flag in re.findall(r"`(--[a-z0-9*-]+)`", line.split("|")[1])}


def test_the_readme_lists_every_option_of_the_table_and_no_other():
    """The options are declared once (``harness.options``); the README's table names each of them (the
    Kubernetes executor's as ``--k8s-*``, explained in docs/kubernetes.md)."""
    from harness import options

    declared = {o.flag for o in options.all_options()}
    listed = readme_option_flags()
    kubernetes = {f for f in declared if f.startswith("--k8s-")}
    assert "--k8s-*" in listed and kubernetes
    assert declared - kubernetes - listed == set(), "options missing from the README's table"
    assert listed - declared - {"--k8s-*"} == set(), "the README's table names options that do not exist"
