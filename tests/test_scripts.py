"""scripts/test, the README's one test command: a failed apt-get stops it with the reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: What scripts/test runs before it gets to apt-get; nothing else is on PATH, so every
#: system package it looks for (chromium, promtool …) counts as missing.
TOOLS = ("dirname", "ls", "mktemp", "tail", "rm")


def _fake_bin(tmp_path: Path, apt_get: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real is not None, tool
        (folder / tool).symlink_to(real)
    for name, body in (("apt-get", apt_get), ("id", 'echo 0')):  # as root, with apt-get
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


@pytest.mark.parametrize(("apt_get", "says"), [
    ('echo "E: Failed to fetch http://deb.example Temporary failure resolving"; exit 100',
     "apt-get update failed"),
    ('[ "$1" = update ] && exit 0; echo "E: Unable to locate package chromium-driver"; '
     "exit 100", "apt-get install"),
])
def test_a_failed_apt_get_stops_scripts_test_with_the_reason(
        tmp_path: Path, apt_get: str, says: str) -> None:
    """apt-get update or install fails: exit 1 at once, naming the step and showing apt's
    own last lines, instead of carrying on to a run with those tests skipped."""
    folder = _fake_bin(tmp_path, apt_get)
    done = subprocess.run(["/bin/bash", str(REPO / "scripts" / "test")],
                          env={"PATH": str(folder)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert f"scripts/test: {says}" in done.stderr and "failed" in done.stderr
    assert "E: " in done.stderr  # apt's own words, not just ours
