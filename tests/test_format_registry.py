"""Every registered payload format, as a table: it builds a body, and what it claims holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notifier.config import Webhook
from notifier.delivery.formats import FORMATS, Format, check_config, formatter_for, load_config
from notifier.delivery.transport import TransportFactory
from notifier.signing import decode_secret
from notifier.testing import WebhookReceiver
from tests.conftest import SECRET, TEST_ENV, config_text
from tests.test_chat_formats import delivery_of

#: The template format's body is the user's (no schema: see tests/schemacheck.py).
FORMAT_PARAMS = [pytest.param(fmt, id=name, marks=[pytest.mark.template_bodies]
                              if name == "template" else []) for name, fmt in FORMATS.items()]
#: What each format needs besides its name to be a complete webhook.
NEEDS: dict[str, dict[str, Any]] = {
    "template": {"template": '{"text": {{ message.body | tojson }}}'},
}


def webhook_of(fmt: Format, url: str = "https://hooks.example.com/x") -> Webhook:
    extra = dict(NEEDS.get(fmt.name, {}))
    if "template" in extra:
        extra["template_name"] = "test"
    return Webhook(name="hook", url=url, secrets=(decode_secret(SECRET),), format=fmt.name,
                   allow_private_urls=True, **extra)


def test_the_registry_names_each_format_by_its_own_name() -> None:
    """A format is registered under the name it carries (the name config accepts)."""
    assert FORMATS, "no formats registered"
    for name, fmt in FORMATS.items():
        assert fmt.name == name


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_each_format_builds_a_json_body_for_a_sample_delivery(fmt: Format) -> None:
    """The body is non-empty JSON naming the message, with the format's signing claim."""
    payload = formatter_for(webhook_of(fmt))(delivery_of("I want a refund"))
    assert payload.content_type in ("application/json", "application/cloudevents+json")
    assert payload.signed is fmt.signed
    assert "I want a refund" in json.dumps(json.loads(payload.body), ensure_ascii=False)


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
async def test_an_unsigned_format_sends_no_signature_headers(
        fmt: Format, transport_cls: TransportFactory) -> None:
    """POSTed with a secret configured, a signed format verifies; an unsigned one has none."""
    path = "/signed" if fmt.signed else "/open"  # /signed refuses a request without one
    async with WebhookReceiver({"/signed": SECRET}) as receiver:
        client = transport_cls(webhook_of(fmt, receiver.url_for(path)))
        try:
            await client.post(delivery_of())
        finally:
            await client.close()
        got = receiver.received[0]
    if fmt.signed:
        assert got.verified is True
    else:
        assert got.verified is None
        assert not {"webhook-signature", "webhook-timestamp"} & set(got.headers)


def _write(tmp_path: Path, hook: dict[str, Any]) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("https://api.roomlio.com/rpc", "https://hooks.example.com",
                                rooms=["r1"], webhooks={"crm": hook}))
    return str(path)


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_the_loader_applies_each_formats_rate_grouping_and_signing(
        tmp_path: Path, fmt: Format) -> None:
    """Default rate, group_wait and secret are accepted or refused as the format says."""
    hook = {"url": "https://hooks.example.com/x", "format": fmt.name, **NEEDS.get(fmt.name, {})}
    assert load_config(_write(tmp_path, hook), env=TEST_ENV).webhooks["crm"].rate_limit \
        == fmt.default_rate
    grouped = check_config(_write(tmp_path, {**hook, "group_wait": "10s"}), env=TEST_ENV)
    assert bool(grouped) is not fmt.groupable, grouped
    signed = check_config(_write(tmp_path, {**hook, "secret": "${TEST_SECRET}"}), env=TEST_ENV)
    assert bool(signed) is not fmt.signed, signed
