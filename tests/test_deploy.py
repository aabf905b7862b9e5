"""What ships in deploy/ and the Dockerfile: shapes, metric names, and the entrypoint for real."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from notifier.server.metrics import Metrics
from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests import realparts
from tests.conftest import TEST_ENV, config_text

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
METRIC = re.compile(r"\bnotifier_[a-z_]+\b")


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def test_dockerfile_has_the_instructions_of_a_production_image_in_a_sane_order():
    """Multi-stage slim build, non-root user, /data volume, healthcheck, exec-form entrypoint."""
    steps = _instructions()
    keywords = [k for k, _ in steps]
    froms = [args for k, args in steps if k == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    assert " AS " in froms[0].upper()
    assert any(k == "COPY" and "--from=" in a for k, a in steps)
    assert any(k == "RUN" and "pip install" in a and a.rstrip().endswith(" .") for k, a in steps)
    user = next(a for k, a in steps if k == "USER")
    assert user not in ("root", "0")
    assert dict(steps)["VOLUME"] == '["/data"]'
    assert dict(steps)["ENTRYPOINT"] == '["notifier"]'
    assert json.loads(dict(steps)["CMD"]) == ["run", "--config", "/config/rules.yaml"]
    health = dict(steps)["HEALTHCHECK"]
    assert "/healthz" in health or "NOTIFIER_HEALTH_URL" in health
    assert "HEALTHCHECK" in keywords and "curl" not in health
    order = [keywords.index(k, keywords.index("FROM", 1))
             for k in ("COPY", "USER", "VOLUME", "HEALTHCHECK", "ENTRYPOINT", "CMD")]
    assert order == sorted(order), "the final stage's instructions are out of order"
    assert keywords[-2:] == ["ENTRYPOINT", "CMD"]


def test_dockerfile_healthcheck_probes_the_default_listen_address():
    """The healthcheck URL points at /healthz on the documented default port."""
    env = dict(pair.split("=", 1) for k, a in _instructions() if k == "ENV"
               for pair in shlex.split(a))
    assert env["NOTIFIER_HEALTH_URL"] == "http://127.0.0.1:9464/healthz"


def _metric_names() -> set[str]:
    return Metrics(["r"], ["w"]).names()


def test_alert_rules_and_dashboard_use_only_metrics_that_exist():
    """Every notifier_* name in the alert rules and the Grafana dashboard is exported."""
    known = _metric_names()
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(used) >= 12
    assert used <= known, f"unknown metrics: {sorted(used - known)}"


def test_alert_rules_pass_promtool():
    """promtool accepts the alert rules file."""
    realparts.require("promtool", shutil.which("promtool") is not None)
    result = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "prometheus-alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_and_systemd_unit_run_the_notifier_as_documented():
    """Compose runs the image with PostgreSQL; the unit execs `notifier run` and drains on stop."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    notifier = compose["services"]["notifier"]
    assert notifier["command"][:3] == ["run", "--config", "/config/rules.yaml"]
    assert any(v.endswith(":/data") for v in notifier["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in notifier["ports"])
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    unit = (DEPLOY / "notifier.service").read_text()
    assert re.search(r"^ExecStart=\S+/notifier run --config \S+$", unit, re.M)
    assert "KillSignal=SIGTERM" in unit and "RestartPreventExitStatus=2" in unit


#: What pip says when it cannot reach the package index (not when our package is broken).
_OFFLINE = ("No matching distribution", "Failed to establish a new connection",
            "Temporary failure in name resolution", "Network is unreachable")


@pytest.fixture
def clean_venv(tmp_path: Path) -> Path:
    """A fresh venv with the repository installed as the Dockerfile's build stage does."""
    realparts.require("package-index")  # NOTIFIER_TEST_HIDE: skip before a slow install
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q",
                          "--disable-pip-version-check", str(REPO)],
                         capture_output=True, text=True, timeout=300)
    offline = any(sign in pip.stderr + pip.stdout for sign in _OFFLINE)
    realparts.require("package-index", not (pip.returncode != 0 and offline))
    assert pip.returncode == 0, pip.stderr[-2000:]
    return env_dir


@pytest.mark.slow
async def test_entrypoint_runs_in_a_clean_venv_as_the_container_runs_it(tmp_path, clean_venv):
    """`pip install .` into a fresh venv, then `notifier run` serves /healthz and stops on TERM."""
    env_dir = clean_venv
    async with RoomlioEmulator(api_key=TEST_ENV["TEST_API_KEY"]) as emulator, \
            WebhookReceiver({"/crm": TEST_ENV["TEST_SECRET"]}) as receiver:
        emulator.add_room(key="r1")
        emulator.post("r1", "refund please")
        document = yaml.safe_load(config_text(emulator.url, receiver.url, rooms=["r1"]))
        port = _free_port()
        document["server"] = {"listen": f"127.0.0.1:{port}"}
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "rules.yaml").write_text(yaml.safe_dump(document))
        data = tmp_path / "data"
        data.mkdir()
        # the image's ENTRYPOINT + CMD, with /config mapped to this test's folder
        proc = await asyncio.create_subprocess_exec(
            str(env_dir / "bin" / "notifier"), "run", "--config",
            str(tmp_path / "config" / "rules.yaml"), cwd=data,
            env={"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
                 "HOME": str(data), **TEST_ENV},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await receiver.wait_count(1, timeout=30)
            health = await _healthcheck(env_dir, f"http://127.0.0.1:{port}/healthz")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert health == 0
    assert proc.returncode == 0, err.decode()[-2000:]


async def _healthcheck(env_dir: Path, url: str) -> int:
    """The Dockerfile's HEALTHCHECK command, run with the venv's python."""
    health = dict(_instructions())["HEALTHCHECK"]
    command = json.loads(health[health.index("CMD") + 3:].strip())
    assert command[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        str(env_dir / "bin" / "python"), *command[1:],
        env={**os.environ, "NOTIFIER_HEALTH_URL": url})
    return await asyncio.wait_for(proc.wait(), 30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

