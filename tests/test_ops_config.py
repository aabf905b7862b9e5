"""The `server:` and `logging:` config sections: defaults, checks, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from notifier.config import LoggingSettings, ServerSettings
from notifier.delivery.formats import check_config, load_config

BASE = {"roomlio": {"base_url": "https://api.example.com", "api_key": "k" * 20},
        "rooms": [{"key": "r1"}], "webhooks": {"crm": {"url": "https://hooks.example.com/x"}},
        "rules": [{"name": "r", "notify": ["crm"]}]}


def _write(tmp_path: Path, **sections: object) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({**BASE, **sections}, sort_keys=False))
    return str(path)


def test_server_is_off_without_its_section_and_defaults_to_loopback_with_it(tmp_path):
    """No `server:` means no listener; `server: {}` listens on 127.0.0.1:9464, no token."""
    assert load_config(_write(tmp_path)).server is None
    assert load_config(_write(tmp_path, server={})).server == ServerSettings()
    assert ServerSettings().host == "127.0.0.1" and ServerSettings().admin_token is None


def test_server_and_logging_values_are_read(tmp_path):
    """listen, admin_token, room_metrics_limit, format and level reach the dataclasses."""
    config = load_config(_write(tmp_path, server={
        "listen": "[::1]:9000", "admin_token": "t" * 20, "room_metrics_limit": 10,
        "allowed_hosts": ["Notifier.Example.com.", "prometheus_target"]},
        logging={"format": "json", "level": "debug"}))
    assert config.server == ServerSettings("::1", 9000, "t" * 20, 10,
                                           ("notifier.example.com", "prometheus_target"))
    assert config.logging == LoggingSettings("json", "DEBUG")


@pytest.mark.parametrize(("sections", "expected"), [
    ({"server": {"listen": "9464"}}, "server.listen: must be host:port"),
    ({"server": {"listen": "localhost:70000"}}, "server.listen: must be host:port"),
    ({"server": {"admin_token": "short-secret"}}, "server.admin_token: is too short"),
    ({"server": {"port": 1}}, "server.port: unknown key"),
    ({"server": {"allowed_hosts": ["https://x.example"]}},
     "server.allowed_hosts: must be a host name without scheme or port"),
    ({"server": {"allowed_hosts": ["ok.example", "x.example:9464"]}},
     "server.allowed_hosts: must be a host name without scheme or port"),
    ({"logging": {"format": "xml"}}, "logging.format: unknown log format 'xml'"),
    ({"logging": {"level": "LOUD"}}, "logging.level: unknown log level"),
])
def test_bad_server_and_logging_values_are_reported_with_their_line(tmp_path, sections,
                                                                     expected):
    """Each mistake is one problem naming the key; a short token's value is not shown."""
    problems = [str(p) for p in check_config(_write(tmp_path, **sections))]
    assert len(problems) == 1 and expected in problems[0], problems
    assert "rules.yaml:" in problems[0] and "short-secret" not in problems[0]
