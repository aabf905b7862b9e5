"""MkDocs hooks (mkdocs.yml ``hooks:``): the manual's site is built from the repository as is.

The Markdown is written to be read in the repository, where README.md links to
``docs/rules.md`` and docs/testing.md to ``../RELIABILITY.md``. The site's pages are
``docs/`` plus the few pages outside it (``SITE_PAGES``: the README is the front page), so
each relative link is resolved as the repository resolves it and pointed at the page that
file became. A linked repository file that is no page (a schema, a deploy file) is copied
into the site under ``repo/`` as it is. A link to anything else (a file that does not
exist, a folder, Markdown that is no page) is left as written, and ``mkdocs build
--strict`` reports it: a broken link fails the build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

__all__ = ["SITE_PAGES", "linked_files", "on_files", "on_page_markdown", "rewrite_links",
           "site_path"]

ROOT = Path(__file__).resolve().parent.parent
#: Repository Markdown outside docs/ that the site shows, and the page each becomes.
SITE_PAGES = {
    "README.md": "index.md",
    "CHANGELOG.md": "changelog.md",
    "RELIABILITY.md": "reliability.md",
    "bench/RESULTS.md": "bench-results.md",
}
_REPO_PATHS = {page: repo for repo, page in SITE_PAGES.items()}
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(!?\[(?:[^\]\\]|\\.)*\]\(\s*<?)([^)\s>]+)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
#: Where linked repository files that are no page go in the site.
COPIES = "repo/"


def site_path(repo_path: str) -> str | None:
    """The site page (or file) a repository path became; None when it is not in the site."""
    if repo_path in SITE_PAGES:
        return SITE_PAGES[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    if _copied(repo_path):
        return COPIES + repo_path
    return None


def _copied(repo_path: str) -> bool:
    """A repository file (not Markdown, not a folder, not outside) the site carries a copy of."""
    if repo_path.startswith("../") or repo_path.endswith(".md"):
        return False
    path = (ROOT / repo_path).resolve()
    return path.is_relative_to(ROOT) and path.is_file()  # a symbolic link out: not copied


def _resolved(target: str, repo_dir: str) -> str | None:
    """The repository path a relative link points at; None for a URL, an anchor, a root."""
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return None
    return posixpath.normpath(posixpath.join(repo_dir, target.partition("#")[0]))


def _rewritten(target: str, repo_dir: str, site_dir: str) -> str:
    repo_path = _resolved(target, repo_dir)
    if repo_path is None:
        return target
    _, hash_, anchor = target.partition("#")
    page = site_path(repo_path)
    if page is None:
        return target  # not in the site: mkdocs --strict names it
    return posixpath.relpath(page, site_dir or ".") + hash_ + anchor


def rewrite_links(markdown: str, repo_path: str, site_uri: str) -> str:
    """``markdown`` of the repository file ``repo_path`` shown as the page ``site_uri``,
    each relative link outside code blocks pointed at the page its target became."""
    repo_dir, site_dir = posixpath.dirname(repo_path), posixpath.dirname(site_uri)
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = _LINK.sub(
                lambda m: m.group(1) + _rewritten(m.group(2), repo_dir, site_dir), line)
        lines.append(line)
    return "".join(lines)


def linked_files(sources: dict[str, str]) -> set[str]:
    """The repository files (no pages) that ``sources`` (repository path → Markdown) link."""
    found = set()
    for repo_path, markdown in sources.items():
        for line in _prose(markdown):
            for match in _LINK.finditer(line):
                target = _resolved(match.group(2), posixpath.dirname(repo_path))
                if target is not None and _copied(target) and not target.startswith("docs/"):
                    found.add(target)
    return found


def _prose(markdown: str) -> list[str]:
    lines, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def on_files(files: Any, config: Any) -> Any:
    """Add the pages from outside docs/ (SITE_PAGES), and copies of the repository files
    the pages link to, to the site's files."""
    from mkdocs.structure.files import File

    for repo_path, page in SITE_PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / repo_path)))
    sources = {repo: (ROOT / repo).read_text(encoding="utf-8") for repo in SITE_PAGES}
    for doc in files.documentation_pages():
        if doc.abs_src_path and doc.src_uri not in _REPO_PATHS:
            sources["docs/" + doc.src_uri] = Path(doc.abs_src_path).read_text(encoding="utf-8")
    for repo_path in sorted(linked_files(sources)):
        files.append(File.generated(config, COPIES + repo_path,
                                    abs_src_path=str(ROOT / repo_path)))
    return files


def on_page_markdown(markdown: str, page: Any, **_kwargs: Any) -> str:
    """Point the page's repository links at site pages."""
    uri = page.file.src_uri
    return rewrite_links(markdown, _REPO_PATHS.get(uri, "docs/" + uri), uri)
