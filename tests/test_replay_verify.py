"""`notifier replay --since` re-derives events from Roomlio history; `notifier verify`
explains why a captured request does or does not verify."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from notifier.delivery.diagnose import diagnose
from notifier.signing import decode_secret, signature_headers
from notifier.store import open_store
from tests.conftest import SECRET, running
from tests.test_delivery_ops import cli

OTHER = "whsec_" + base64.b64encode(b"z" * 32).decode()


async def test_replay_resends_history_through_current_rules_with_natural_ids(
        emulator, receiver, make_config, tmp_path):
    """Events already delivered are enqueued again with their webhook-ids, a rule added
    later adds its own, --dry-run changes nothing, and the cursor does not move."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    emulator.post("r1", "my lawyer will call")
    config = make_config(rooms=["r1"])
    async with running(config):
        await receiver.wait_count(1)
        await emulator.wait_requests(len(emulator.requests) + 2)
    first_ids = receiver.unique_ids()
    async with open_store(config.state) as store:
        cursor = await store.load_room("r1")
    rules = [{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]},
             {"name": "legal", "keywords": ["lawyer"], "notify": ["mod"]}]
    config = make_config(rooms=["r1"], rules=rules)
    since = "2000-01-01T00:00:00Z"
    code, out, _ = await cli("replay", "--config", config.path, "--since", since, "--dry-run")
    assert code == 0 and "2 delivery(ies) would be enqueued" in out, out
    async with open_store(config.state) as store:
        assert (await store.stats()).outbox == 0
    code, out, _ = await cli("replay", "--config", config.path, "--since", since)
    assert code == 0 and out.strip().endswith("same webhook-ids as the first time"), out
    async with open_store(config.state) as store:
        assert (await store.stats()).outbox == 2
        assert await store.load_room("r1") == cursor
    async with running(config):
        await receiver.wait_count(3)
    again = [r for r in receiver.received[1:]]
    assert {r.path for r in again} == {"/crm", "/mod"}
    assert first_ids <= {r.webhook_id for r in again}   # the same natural id, resent


async def test_replay_refuses_an_unknown_filter_name(emulator, receiver, make_config):
    """A typo in --rule is an error naming the known rules, not a silent no-op."""
    config = make_config(rooms=["r1"])
    code, _, err = await cli("replay", "--config", config.path, "--since", "1h",
                             "--rule", "refundz")
    assert code == 64 and "unknown rule 'refundz'" in err and "refunds" in err


NOW = 1_800_000_000
BODY = b'{"type":"message.created","data":{"x":1}}'


def signed(secret: str = SECRET, at: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return signature_headers([decode_secret(secret)], "msg_1", at, body)


@pytest.mark.parametrize(("secrets", "headers", "body", "ok", "says"), [
    ([SECRET], signed(), BODY, True, "verified with secret 1"),
    ([OTHER, SECRET], signed(), BODY, True, "verified with secret 2"),
    ([OTHER], signed(), BODY, False, "not the one this webhook uses"),
    ([signed()["webhook-signature"]], signed(), BODY, False, "that is a signature"),
    ([SECRET], signed(at=NOW - 3600), BODY, False, "3600s old"),
    ([SECRET], signed(), json.dumps(json.loads(BODY), indent=2).encode(), False, None),
    ([SECRET], signed(), BODY + b"\n", False, "trailing newline was added"),
    ([SECRET], signed(), json.dumps(json.loads(BODY)).encode(), False, "re-serialised"),
    ([SECRET], {"webhook-id": "msg_1"}, BODY, False, "missing header(s): webhook-timestamp"),
    (["whsec_c2hvcnQ="], signed(), BODY, False, "decodes to 5 bytes"),
])
def test_diagnose_names_the_usual_mistakes(secrets, headers, body, ok, says):
    """Each common failure gets its own explanation; a secret is never repeated."""
    verdict = diagnose(secrets, headers, body, now=NOW)
    assert verdict.ok is ok
    text = " ".join(verdict.reasons)
    if says:
        assert says in text, text
    assert SECRET.removeprefix("whsec_") not in text


async def test_verify_command_reads_a_captured_request_and_sets_the_exit_code(
        tmp_path: Path):
    """`notifier verify --request` exits 0 for a good request, 1 with the reason if not."""
    at = int(time.time())
    request = tmp_path / "req.json"
    request.write_text(json.dumps({"headers": signed(at=at), "body": BODY.decode()}))
    code, out, _ = await cli("verify", "--secret", SECRET, "--request", str(request))
    assert (code, out.strip()) == (0, "OK: verified with secret 1")
    headers, body = tmp_path / "h.txt", tmp_path / "b.json"
    headers.write_text("POST /hook HTTP/1.1\n" + "".join(
        f"{k}: {v}\n" for k, v in signed(at=at).items()))
    body.write_bytes(BODY + b"\n")
    code, out, _ = await cli("verify", "--secret", SECRET, "--headers", str(headers),
                             "--body", str(body))
    assert code == 1 and "trailing newline was added" in out
    assert SECRET not in out
