"""The manual as a site (mkdocs.yml): repository links become page links, and a strict build
fails on a broken link, a broken anchor or a page left out of the nav."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_docs_links import slug

REPO = Path(__file__).resolve().parent.parent
#: What a build reads: the config, its hook, docs/ and the pages from outside docs/.
SITE_SOURCES = ("mkdocs.yml", "scripts/mkdocs_hooks.py", "docs", "README.md", "CHANGELOG.md",
                "RELIABILITY.md", "bench/RESULTS.md")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks",
                                                  REPO / "scripts" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("repo_path", "page", "markdown", "shown"), [
    ("README.md", "index.md", "[Rules](docs/rules.md#the-language)",
     "[Rules](rules.md#the-language)"),
    ("README.md", "index.md", "[log](CHANGELOG.md) [r](bench/RESULTS.md)",
     "[log](changelog.md) [r](bench-results.md)"),
    ("docs/testing.md", "testing.md", "see [RELIABILITY.md](../RELIABILITY.md).",
     "see [RELIABILITY.md](reliability.md)."),
    ("docs/scale.md", "scale.md", "[x](<../bench/RESULTS.md#e2e>)",
     "[x](<bench-results.md#e2e>)"),
    ("bench/RESULTS.md", "bench-results.md", "[s](../docs/scale.md)", "[s](scale.md)"),
    ("docs/ops.md", "ops.md", "![shot](status-page.png) [a](#here) [b](other.md)",
     "![shot](status-page.png) [a](#here) [b](other.md)"),
    ("docs/ops.md", "ops.md", "[web](https://example.com/a.md) [c](../deploy/x.yml)",
     "[web](https://example.com/a.md) [c](../deploy/x.yml)"),
    ("docs/ops.md", "ops.md", "[alerts](../deploy/prometheus-alerts.yml) [d](../deploy/)",
     "[alerts](repo/deploy/prometheus-alerts.yml) [d](../deploy/)"),
    ("README.md", "index.md", f"[example](rules.yaml) [out](../{REPO.name}/rules.yaml)",
     f"[example](repo/rules.yaml) [out](../{REPO.name}/rules.yaml)"),
    ("README.md", "index.md", "[md](docs/../CONTRIBUTING.md)", "[md](docs/../CONTRIBUTING.md)"),
    ("README.md", "index.md", "```md\n[code](docs/rules.md)\n```\n[t](docs/rules.md)\n",
     "```md\n[code](docs/rules.md)\n```\n[t](rules.md)\n"),
], ids=["docs page", "root pages", "up to the root", "angle brackets and anchor",
        "from bench", "unchanged within docs", "urls and missing files",
        "repository files copied, folders not", "not outside the repository",
        "other Markdown",
        "not in code blocks"])
def test_repository_links_become_links_between_pages(repo_path, page, markdown, shown):
    """A link as written for the repository points at the page its target became; one to a
    file that is no page is left for the strict build to report."""
    assert _hooks().rewrite_links(markdown, repo_path, page) == shown


def test_only_plain_repository_files_are_copied_into_the_site(tmp_path, monkeypatch):
    """A linked file of the repository gets a copy; Markdown that is no page, a folder, a
    missing file and a symbolic link out of the repository do not (the build reports them)."""
    hooks = _hooks()
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    (root / "deploy" / "a.yml").write_text("a: 1\n")
    (root / "deploy" / "README.md").write_text("# notes\n")
    (tmp_path / "secret.txt").write_text("no\n")
    (root / "deploy" / "out.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setattr(hooks, "ROOT", root)
    shown = {path: hooks.site_path(path) for path in (
        "deploy/a.yml", "deploy/README.md", "deploy", "deploy/gone.yml", "deploy/out.txt")}
    assert shown == {"deploy/a.yml": "repo/deploy/a.yml", "deploy/README.md": None,
                     "deploy": None, "deploy/gone.yml": None, "deploy/out.txt": None}


def _copy_sources(tmp_path: Path) -> Path:
    for source in SITE_SOURCES:
        src, dest = REPO / source, tmp_path / source
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copy2(src, dest)
    pages = {str(page.relative_to(tmp_path)): page.read_text(encoding="utf-8")
             for page in [*tmp_path.glob("*.md"), *tmp_path.glob("docs/*.md"),
                          tmp_path / "bench" / "RESULTS.md"]}
    for linked in _hooks().linked_files(pages):  # the repository files the pages link to
        if (REPO / linked).is_file():
            (tmp_path / linked).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / linked, tmp_path / linked)
    return tmp_path


def _build(root: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mkdocs", reason="mkdocs comes with the dev extra")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(root / "site")],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"})


def _warnings(log: str) -> list[str]:
    """The WARNING records of a build's log (a record's continuation lines included)."""
    records = re.split(r"^(?=[A-Z]+\s+-  )", log, flags=re.MULTILINE)
    return [record for record in records if record.startswith("WARNING")]


@pytest.mark.slow
def test_the_manual_builds_strict(tmp_path):
    """The repository's manual builds with --strict: no broken link, anchor or stray page;
    and a heading's anchor on the site is GitHub's, which the pages link to (punctuation,
    repeated hyphens and non-ASCII letters kept as GitHub keeps them)."""
    root = _copy_sources(tmp_path)
    heading = "Tabs — and ünïcode -- in `a` heading"
    with open(root / "docs" / "rules.md", "a", encoding="utf-8") as page:
        page.write(f"\n## {heading}\n")
    (root / "deploy").mkdir(exist_ok=True)
    (root / "deploy" / "alerts.yml").write_text("groups: []\n")
    with open(root / "docs" / "testing.md", "a", encoding="utf-8") as page:
        page.write(f"\n[There](rules.md#{slug(heading)}), [alerts](../deploy/alerts.yml).\n")
    done = _build(root)
    assert done.returncode == 0, done.stderr
    assert (root / "site" / "repo" / "deploy" / "alerts.yml").read_text() == "groups: []\n"
    assert 'href="../repo/deploy/alerts.yml"' in (root / "site" / "testing" / "index.html"
                                                   ).read_text()
    assert (tmp_path / "site" / "index.html").read_text().count("roomlio-notifier") > 1


#: Things a reader would trip over, each where it goes, and the name the build must report.
BREAKAGES = [
    ("docs/rules.md", "\nSee [the old page](guide.md).\n", "guide.md"),
    ("docs/rules.md", "\nSee [there](settings.md#no-such-heading).\n", "#no-such-heading"),
    ("README.md", "\n[Gone](docs/removed.md)\n", "removed.md"),
    ("docs/orphan.md", "# An orphan\n", "orphan.md"),
    ("docs/scale.md", "\nSee [the deploy files](../deploy/).\n", "../deploy/"),
]


@pytest.mark.slow
def test_a_strict_build_fails_on_broken_links_anchors_and_pages_out_of_the_nav(tmp_path):
    """A broken link (in docs/ or on the front page), a broken anchor and a page left out of
    the nav each fail the build, each named (one build reports them all)."""
    root = _copy_sources(tmp_path)
    for path, text, _ in BREAKAGES:
        with open(root / path, "a", encoding="utf-8") as page:
            page.write(text)
    done = _build(root)
    warned = _warnings(done.stderr)
    assert done.returncode != 0
    missed = [named for _, _, named in BREAKAGES if not any(named in w for w in warned)]
    assert missed == [], done.stderr
