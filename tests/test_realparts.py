"""A missing real part skips loudly on a developer's machine and fails the run under CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests import realparts

REPO = Path(__file__).resolve().parent.parent
#: A test that drives promtool; hidden below, it must skip (locally) or fail (under CI).
TARGET = "tests/test_deploy.py::test_alert_rules_pass_promtool"


def _pytest(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "NOTIFIER_TEST_HIDE")}
    return subprocess.run([sys.executable, "-m", "pytest", TARGET, "-p", "no:cacheprovider"],
                          cwd=REPO, env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)


def test_a_missing_real_part_fails_under_ci_saying_what_to_install() -> None:
    """CI=true and promtool absent: the run fails, and the failure names the package."""
    done = _pytest(CI="true", NOTIFIER_TEST_HIDE="promtool")
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout
    assert "real part missing: promtool; install promtool: apt-get install prometheus" \
        in done.stdout


def test_a_missing_real_part_outside_ci_skips_with_a_loud_summary() -> None:
    """Without CI the run passes, and its end says loudly what did not run and why."""
    done = _pytest(NOTIFIER_TEST_HIDE="promtool")
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "REAL PARTS MISSING: these tests did NOT run" in done.stdout
    assert "promtool: 1 test(s) skipped; install promtool: apt-get install prometheus" \
        in done.stdout


def test_present_parts_run_without_a_summary() -> None:
    """Nothing hidden (and promtool installed, as scripts/test ensures): no skip, no alarm."""
    realparts.require("promtool", shutil.which("promtool") is not None)
    done = _pytest(CI="true")
    assert done.returncode == 0, done.stdout
    assert "1 passed" in done.stdout and "REAL PARTS MISSING" not in done.stdout
