"""The real parts some tests start or drive, and what a run does when one is missing.

PostgreSQL, Chromium with ChromeDriver, promtool and the package index (a clean
``pip install``) are real programs, not fakes: ``scripts/test`` installs the system ones.
When one is missing the tests that need it skip on a developer's machine, and the end of
the run prints a loud summary of what was skipped and how to install it. Under CI
(``CI=true``, which CI services set) a missing part FAILS the test instead: a green run
there means every real part ran.

``NOTIFIER_TEST_HIDE=postgresql,chromium`` (or ``all``) makes the tests behave as if those
parts were missing, to check this very behaviour.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

__all__ = ["HIDE_ENV", "INSTALL", "hidden", "require", "summary", "under_ci"]

#: How to get each part (Debian package names; scripts/test installs them as root).
INSTALL = {
    "postgresql": "the PostgreSQL server (initdb, pg_ctl): apt-get install postgresql",
    "chromium": "Chromium and ChromeDriver: apt-get install chromium chromium-driver",
    "promtool": "promtool: apt-get install prometheus",
    "package-index": "the Python package index (a clean `pip install .`): network access "
                     "to PyPI, or PIP_INDEX_URL set to a reachable mirror",
}
HIDE_ENV = "NOTIFIER_TEST_HIDE"
_MARK = "real part missing"
_REASON = re.compile(rf"{_MARK}: ([\w-]+)")


def under_ci() -> bool:
    """Whether this run is CI's (``CI`` set to true, as GitHub, GitLab and others do)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def hidden(part: str) -> bool:
    """Whether ``NOTIFIER_TEST_HIDE`` asks the tests to treat ``part`` as missing."""
    names = {n.strip() for n in os.environ.get(HIDE_ENV, "").split(",")}
    return part in names or "all" in names


def require(part: str, present: bool = True) -> None:
    """Go on when ``part`` is present; otherwise skip, or fail under CI, saying how to
    install it. Call it with no ``present`` first to honour NOTIFIER_TEST_HIDE early."""
    __tracebackhide__ = True  # report the skip or failure at the caller, not here
    if part not in INSTALL:
        raise ValueError(f"unknown real part {part!r} (known: {', '.join(INSTALL)})")
    if present and not hidden(part):
        return
    message = f"{_MARK}: {part}; install {INSTALL[part]}"
    if under_ci():
        pytest.fail(f"{message}. CI=true: a missing real part is a failure, not a skip "
                    "(scripts/test installs the system packages when run as root)",
                    pytrace=False)
    pytest.skip(message)


def _part_of(report: Any) -> str | None:
    longrepr = getattr(report, "longrepr", None)
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
    found = _REASON.search(str(reason))
    return found.group(1) if found else None


def summary(skipped: Iterable[Any]) -> list[str]:
    """Lines naming each missing part, how many tests it skipped and how to install it."""
    counts = Counter(p for p in map(_part_of, skipped) if p is not None)
    return [f"{part}: {n} test(s) skipped; install {INSTALL.get(part, '?')}"
            for part, n in sorted(counts.items())]
