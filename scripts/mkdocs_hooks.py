"""MkDocs hooks (mkdocs.yml ``hooks:``): the manual's site is built from the repository as is.

The Markdown is written to be read in the repository, where README.md links to
``docs/rules.md`` and docs/testing.md to ``../RELIABILITY.md``. The site's pages are
``docs/`` plus the few pages outside it (``SITE_PAGES``: the README is the front page), so
each relative link is resolved as the repository resolves it and pointed at the page that
file became. A link to a file that is not a page is left as written, and
``mkdocs build --strict`` reports it: a broken link fails the build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

__all__ = ["SITE_PAGES", "on_files", "on_page_markdown", "rewrite_links", "site_path"]

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


def site_path(repo_path: str) -> str | None:
    """The site page (or file) a repository path became; None when it is not in the site."""
    if repo_path in SITE_PAGES:
        return SITE_PAGES[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    return None


def _rewritten(target: str, repo_dir: str, site_dir: str) -> str:
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return target
    file_part, hash_, anchor = target.partition("#")
    page = site_path(posixpath.normpath(posixpath.join(repo_dir, file_part)))
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


def on_files(files: Any, config: Any) -> Any:
    """Add the pages from outside docs/ (SITE_PAGES) to the site's files."""
    from mkdocs.structure.files import File

    for repo_path, page in SITE_PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / repo_path)))
    return files


def on_page_markdown(markdown: str, page: Any, **_kwargs: Any) -> str:
    """Point the page's repository links at site pages."""
    uri = page.file.src_uri
    return rewrite_links(markdown, _REPO_PATHS.get(uri, "docs/" + uri), uri)
