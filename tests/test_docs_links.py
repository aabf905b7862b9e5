"""The documentation holds together: every relative link and anchor in the repository's
Markdown resolves, every page under docs/ is reachable from the README, and the README's
example configuration is one that ``notifier check`` accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SECRET, notifier_command

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([*REPO.glob("*.md"), *REPO.glob("docs/*.md"), *REPO.glob("bench/*.md")])

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    for _, line in prose_lines(path):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            seen.setdefault(f"{base}-{count}" if count else base, 1)
    return set(seen)


def paragraphs(path: Path) -> list[tuple[int, str]]:
    """Runs of consecutive non-blank prose lines, joined, with the line each starts on: a
    link's text may wrap onto the next line."""
    runs: list[tuple[int, list[str]]] = []
    last = -1
    for number, line in prose_lines(path):
        if not line.strip():
            last = -1
            continue
        if number == last + 1 and runs:
            runs[-1][1].append(line)
        else:
            runs.append((number, [line]))
        last = number
    return [(start, "\n".join(lines)) for start, lines in runs]


def links(path: Path) -> list[tuple[int, str]]:
    """Relative link targets of a file (no URLs with a scheme), with the line each starts on."""
    found = []
    for start, text in paragraphs(path):
        # code spans blanked, newlines kept, so a match's offset still gives its line
        text = _CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
        for match in _LINK.finditer(text):
            target = match.group(1)
            if not _SCHEME.match(target):
                found.append((start + text.count("\n", 0, match.start()), target))
    return found


def broken(path: Path) -> list[str]:
    """One line per link of ``path`` whose file, or whose heading, does not exist."""
    problems = []
    for number, target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{number}: ({target})"
        if not dest.exists():
            problems.append(f"{where}: no such file {dest.relative_to(REPO)}"
                            if dest.is_relative_to(REPO) else f"{where}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page):
    """A link to a file that is not there, or to a heading it does not have, fails."""
    assert broken(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    """A page under docs/ that the front page does not link to is lost to readers."""
    readme = REPO / "README.md"
    linked = {(REPO / target.partition("#")[0]).resolve() for _, target in links(readme)}
    orphans = [p.name for p in sorted(REPO.glob("docs/*.md")) if p.resolve() not in linked]
    assert orphans == []


def test_the_checker_reports_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    """The checker itself: a dead file link and a dead anchor are both reported."""
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "b.md").write_text("# Real heading\n\n## `code` (and more)\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#real-heading) [ok](b.md#code-and-more) [self](#top)\n"
                    "# Top\n```\n[in code](nowhere.md)\n```\n"
                    "[gone](c.md) [no anchor](b.md#imaginary) ![img](b.md)\n"
                    "\nA [wrapped\nlink](b.md#wrapped) and `[code](e.md)`,\nthen [f](f.md).\n")
    assert broken(page) == ["a.md:6: (c.md): no such file c.md",
                            "a.md:6: (b.md#imaginary): no heading #imaginary in b.md",
                            "a.md:8: (b.md#wrapped): no heading #wrapped in b.md",
                            "a.md:10: (f.md): no such file f.md"]


def readme_example() -> str:
    """The first YAML block of the README: the front page's example rules.yaml."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```yaml\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert block, "README.md has no ```yaml block"
    return block.group(1)


def test_the_readme_example_config_passes_check(tmp_path):
    """The front page's rules.yaml is valid (no problem, no warning) once its variables
    are set, as its `notifier check` line promises."""
    path = tmp_path / "rules.yaml"
    path.write_text(readme_example())
    env = {**os.environ, "ROOMLIO_API_KEY": "k", "CRM_WEBHOOK_SECRET": SECRET,
           "MOD_WEBHOOK_SECRET": SECRET}
    done = subprocess.run(notifier_command("check", "--config", str(path)), env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
