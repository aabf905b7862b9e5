"""Shared fixtures: a real Roomlio emulator, a real receiver, configs written to disk."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.config import Config
from notifier.delivery.formats import load_config
from notifier.delivery.sender import DeliveryOutcome
from notifier.delivery.transport import TransportFactory, WebhookClient
from notifier.runtime.service import Service, ServiceHooks
from notifier.testing import Received, RoomlioEmulator, WebhookReceiver
from tests import realparts, schemacheck

#: pg_server / pg_url: a real PostgreSQL server from the system's binaries (tests/pg.py).
pytest_plugins = ["tests.pg"]

API_KEY = "test-key-" + "k" * 16
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
async def emulator() -> AsyncIterator[RoomlioEmulator]:
    async with RoomlioEmulator(api_key=API_KEY) as emu:
        yield emu


@pytest.fixture(autouse=True)
def bodies_match_the_schema(request: pytest.FixtureRequest,
                            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every body a test receiver accepts from the notifier validates against the published
    schema of its format (tests/schemacheck.py); one that does not fails the test."""
    found: list[str] = []
    template_bodies = request.node.get_closest_marker("template_bodies") is not None

    def check(got: Received) -> str | None:
        error = schemacheck.check(got, template_bodies=template_bodies)
        if error is not None:
            found.append(f"{got.path} ({got.headers.get('webhook-id')}): {error}")
        return error

    monkeypatch.setattr(WebhookReceiver, "default_body_check", check)
    yield
    if found:
        pytest.fail(f"{len(found)} webhook body(ies) did not match the published schema "
                    "(notifier/schema; the schemas/ files):\n" + "\n".join(found[:5]),
                    pytrace=False)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        yield rx


#: The webhook transports (``delivery.http_client``) the delivery tests run against.
HTTP_CLIENTS = ("aiohttp", "pyreqwest")


@pytest.fixture(params=HTTP_CLIENTS)
def http_client(request: pytest.FixtureRequest) -> str:
    """Each HTTP client in turn (pyreqwest skipped when not installed)."""
    if request.param == "pyreqwest":
        pytest.importorskip("pyreqwest")
    return str(request.param)


@pytest.fixture
def transport_cls(http_client: str) -> TransportFactory:
    """The Transport class of each HTTP client in turn."""
    if http_client == "pyreqwest":
        from notifier.delivery.transport_reqwest import ReqwestTransport
        return ReqwestTransport
    return WebhookClient


DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "refunds", "keywords": ["refund", "cancel my account"], "notify": ["crm"]},
    {"name": "urgent", "keywords": ["urgent"], "notify": ["crm", "mod"]},
]


def config_text(emulator_url: str, receiver_url: str, *, rooms: list[str],
                roomlio: dict[str, Any] | None = None, delivery: dict[str, Any] | None = None,
                webhooks: dict[str, Any] | None = None,
                rules: list[dict[str, Any]] | None = None, state: str = "state.db") -> str:
    """A complete rules.yaml for the emulator and receiver given; dicts override defaults."""
    document = {
        "roomlio": {
            "base_url": emulator_url, "api_key": "${TEST_API_KEY}", "poll_interval": "100ms",
            "page_size": 50, "start_from": "beginning", "edit_lookback": "10m",
            "edit_scan_interval": "200ms", **(roomlio or {}),
        },
        "rooms": [{"key": r} for r in rooms],
        "state": state,
        "delivery": {"timeout": "2s", "max_attempts": 5, "max_backoff": "200ms",
                     "allow_private_urls": True, **(delivery or {})},
        "webhooks": {
            "crm": {"url": f"{receiver_url}/crm", "secret": "${TEST_SECRET}"},
            "mod": {"url": f"{receiver_url}/mod", "secret": "${TEST_SECRET}"},
            **(webhooks or {}),
        },
        "rules": rules if rules is not None else DEFAULT_RULES,
    }
    return yaml.safe_dump(document, sort_keys=False)


TEST_ENV = {"TEST_API_KEY": API_KEY, "TEST_SECRET": SECRET}


@pytest.fixture
def make_config(tmp_path: Path, emulator: RoomlioEmulator,
                receiver: WebhookReceiver) -> Callable[..., Config]:
    """Write a config for this test's emulator and receiver and load it."""

    def make(**kwargs: Any) -> Config:
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emulator.url, receiver.url, **kwargs))
        return load_config(str(path), env={**os.environ, **TEST_ENV})

    return make


class Outcomes:
    """Collects delivery outcomes from a running service; awaitable conditions on them."""

    def __init__(self) -> None:
        self.items: list[DeliveryOutcome] = []
        self._changed = asyncio.Event()

    def __call__(self, outcome: DeliveryOutcome) -> None:
        self.items.append(outcome)
        self._changed.set()

    @property
    def failed(self) -> list[DeliveryOutcome]:
        return [o for o in self.items if not o.ok]

    async def wait_for(self, predicate: Callable[[Outcomes], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def running(config: Config, outcomes: Outcomes | None = None) -> AsyncIterator[Service]:
    """Run a Service in this event loop for the body of the block, then stop it."""
    service = Service(config, hooks=ServiceHooks(on_outcome=outcomes))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def notifier_command(*args: str) -> list[str]:
    """The CLI as a subprocess, exactly as a user runs it."""
    return [sys.executable, "-m", "notifier", *args]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the chaos tests as a soak: more kills, rooms, messages and "
                          "hypothesis examples (profile 'long')")


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import HealthCheck, settings

    # "ci" keeps the default suite fast; "long" is for the soak. Tests that pin
    # max_examples themselves are not affected.
    settings.register_profile("ci", max_examples=40, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("long", max_examples=600, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("long" if config.getoption("--long") else "ci")


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    """Whether the suite runs as a soak (``pytest --long``)."""
    return bool(request.config.getoption("--long"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        for item in items:  # a soak runs as long as it was asked to
            item.add_marker(pytest.mark.timeout(0))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> Iterator[None]:
    """A loud closing block when real parts were missing, so a green run that skipped
    PostgreSQL or the browser is not mistaken for a complete one (after pytest's own
    summary, so it sits right above the final count)."""
    yield
    lines = realparts.summary(terminalreporter.stats.get("skipped", []))
    if not lines:
        return
    terminalreporter.write_sep("!", "REAL PARTS MISSING: these tests did NOT run",
                               red=True, bold=True)
    for line in lines:
        terminalreporter.write_line(line, red=True, bold=True)
    terminalreporter.write_line("(./scripts/test installs the system packages when run as "
                                "root; under CI=true a missing part fails the run)", red=True)
