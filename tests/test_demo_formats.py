"""`notifier demo --format …` prints what the receiver got in each format."""

from __future__ import annotations

import json

import pytest

from notifier.cli.demo.formats import retarget
from tests.chatcheck import check_slack
from tests.test_cli import run_cli

#: Chat messages a second the demo posts, by format. Slack's default rate limit (one
#: request a second per webhook) makes each matching message cost the run a second, so
#: slack gets fewer: the demo's seeded messages still give it a delivery to each webhook.
RATES = {"slack": "2"}


@pytest.mark.parametrize(("fmt", "marker"), [
    ("slack", '"blocks": ['), ("teams", '"contentType": "application/vnd.microsoft.card.adaptive"'),
    ("template", '"source": "roomlio"'), ("cloudevents", '"specversion": "1.0"'),
])
async def test_demo_prints_each_format_as_received(fmt: str, marker: str) -> None:
    """The demo runs the real pipeline in the format and prints the bodies received."""
    code, out, err = await run_cli("demo", "--format", fmt, "--seconds", "2",
                                   "--rate", RATES.get(fmt, "10"), timeout=60)
    assert code == 0, err
    assert marker in out
    assert "SIGNATURE FAILED" not in out
    if fmt == "slack":
        first = out.split("\n--- ", 2)[1]
        check_slack(json.loads(first.split("\n", 1)[1].rsplit("\n\ndemo summary", 1)[0]))


def test_retarget_switches_every_webhook_and_drops_secrets_for_chat() -> None:
    """Chat formats lose the secret; template keeps it and gains a template."""
    text = "webhooks:\n  a: {url: 'http://x', secret: s}\n  b: {url: 'http://y', secret: s}\n"
    assert "secret" not in retarget(text, "teams")
    assert retarget(text, "template").count("template:") == 2
