"""Slack and Teams payloads: pure builders, checked against the services' own validators."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from slack_sdk.errors import SlackObjectFormationError

from notifier.config import Webhook
from notifier.delivery.formats import formatter_for
from notifier.delivery.formats.slack import MAX_BLOCKS, SECTION_LIMIT, escape, quoted, slack_payload
from notifier.delivery.formats.teams import MAX_BYTES, card, teams_payload
from notifier.delivery.grouping import group_of
from notifier.events import EDITED, Delivery, Event
from tests.chatcheck import adaptive_card_validator, check_slack, check_teams


def delivery_of(body: str = "I want a refund", *, kind: str = "message.created",
                rules: tuple[str, ...] = ("refunds",), room: str = "support-42",
                n: int = 0, **fields: Any) -> Delivery:
    """A delivery of one Roomlio-shaped message."""
    message = {"id": f"msg_{n:020d}", "userID": "usr_1", "username": "jane", "first": "Jane",
               "last": "Doe", "roomName": room, "userType": "member", "body": body,
               "messageType": "user", "links": [], "roomID": "rm_1",
               "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z",
               **fields}
    event = Event.from_message(kind, room, message, rules, 1_795_600_803.0)  # type: ignore[arg-type]
    return Delivery.for_webhook(event, "chat", rules)


BODIES = [
    pytest.param("I want a refund", id="plain"),
    pytest.param("<!channel> <https://evil.example|click> & <@U123>", id="mrkdwn-injection"),
    pytest.param("x" * 10_000, id="very-long"),
    pytest.param("<" * 4000, id="long-all-escaped"),
    pytest.param("line one\nline two\n\n> already quoted", id="multi-line"),
    pytest.param("", id="empty"),
    pytest.param("日本語のメッセージ 🎉 " * 500, id="unicode-long"),
]


@pytest.mark.parametrize("body", BODIES)
def test_slack_payload_passes_the_slack_sdk_block_models(body: str) -> None:
    """Every body, however long or hostile, gives blocks Slack's own models accept."""
    check_slack(slack_payload(delivery_of(body)))


@pytest.mark.parametrize("body", BODIES)
def test_teams_payload_passes_the_published_adaptive_card_schema(body: str) -> None:
    """Every body gives a Workflows message whose card validates against the 1.5 schema."""
    check_teams(teams_payload(delivery_of(body)))


def test_the_validators_reject_what_the_services_reject() -> None:
    """The checks can fail: a too-long section and an unknown card property are refused."""
    payload = slack_payload(delivery_of())
    payload["blocks"][1]["text"]["text"] = "x" * (SECTION_LIMIT + 1)
    with pytest.raises(SlackObjectFormationError):
        check_slack(payload)
    bad_card = card(delivery_of())
    bad_card["body"][0]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        adaptive_card_validator().validate(bad_card)


def test_slack_escapes_mrkdwn_so_a_message_cannot_mention_or_link() -> None:
    """&, < and > are escaped in the quote, the fallback text and the sender's name."""
    d = delivery_of("<!channel> a & b <https://x|y>", first="<@U1>", last="")
    payload = slack_payload(d)
    text = json.dumps(payload)
    assert "<!channel>" not in text and "<@U1>" not in text and "<https://x|y>" not in text
    assert payload["blocks"][1]["text"]["text"] == \
        "> &lt;!channel&gt; a &amp; b &lt;https://x|y&gt;"
    assert "&lt;!channel&gt;" in payload["text"]


def test_slack_shows_rules_body_room_sender_time_and_image_links() -> None:
    """The blocks carry every fact a channel reader needs."""
    d = delivery_of("refund please", rules=("refunds", "urgent"),
                    links=[{"id": "lnk_1", "type": "image", "url": "https://img.example/a.png"}])
    payload = slack_payload(d)
    assert payload["blocks"][0] == {"type": "header", "text": {
        "type": "plain_text", "text": "New message matched refunds, urgent", "emoji": False}}
    fields = [f["text"] for f in payload["blocks"][2]["fields"]]
    assert fields[0] == "*Room*\nsupport-42"
    assert fields[1] == "*From*\nJane Doe (member)"
    assert fields[2].startswith("*Time*\n<!date^1795600802^") and fields[2].endswith(
        "|2026-11-25T10:00:02Z>")
    assert "<https://img.example/a.png|image 1>" in payload["blocks"][3]["text"]["text"]
    check_slack(payload)


def test_slack_cuts_a_long_body_to_one_section_with_a_visible_ellipsis() -> None:
    """A body over 3,000 characters ends in "…" and fits the section limit exactly."""
    text = quoted("&" * 5000)
    assert len(text) <= SECTION_LIMIT and text.endswith("…")
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_an_edit_says_edited_in_both_formats() -> None:
    """``message.edited`` events read "Edited message matched …"."""
    d = delivery_of(kind=EDITED, editedAt="2026-11-25T10:05:00Z")
    assert slack_payload(d)["blocks"][0]["text"]["text"].startswith("Edited message")
    assert "2026-11-25T10:05:00Z" in json.dumps(card(d))


def test_a_group_quotes_the_first_few_and_counts_the_rest() -> None:
    """Seven grouped messages: the summary title, five quotes, "…and 2 more"."""
    group = group_of([delivery_of(f"refund {i}", n=i) for i in range(7)])
    payload = slack_payload(group)
    check_slack(payload)
    assert payload["blocks"][0]["text"]["text"] == "7 new messages in support-42 matched refunds"
    quotes = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert quotes == [f"> refund {i}" for i in range(5)]
    assert payload["blocks"][-1]["elements"][0]["text"] == "…and 2 more"
    teams_card = check_teams(teams_payload(group))
    assert teams_card["body"][0]["text"] == "7 new messages in support-42 matched refunds"
    assert teams_card["body"][-1]["text"] == "…and 2 more"


def test_a_huge_group_stays_under_the_teams_limit_and_slack_block_cap() -> None:
    """Groups of long messages are shortened to 28 KB for Teams and ≤ 50 blocks for Slack."""
    group = group_of([delivery_of("z" * 20_000, n=i) for i in range(200)])
    body = teams_payload(group)
    assert len(body) <= MAX_BYTES
    check_teams(body)
    blocks = slack_payload(group)["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    check_slack(slack_payload(group))


def test_chat_formats_are_not_signed_and_standard_is() -> None:
    """Slack and Teams payloads carry no signature; the standard event does."""
    for fmt, signed in (("slack", False), ("teams", False), ("standard", True)):
        payload = formatter_for(Webhook("w", "https://x.example", format=fmt))(delivery_of())
        assert payload.signed is signed
        assert payload.content_type == "application/json"
