"""The Standard Webhooks reference library's test scenarios, restated as facts of the spec
(ids, secrets, timestamps, expected outcomes) and run through ``notifier verify``, the
test suite's receiver and the secrets ``check`` accepts.

Source of the scenarios: ``libraries/python/tests/test_webhooks.py`` in
github.com/standard-webhooks/standard-webhooks. The signatures here are computed from
the spec's definition (base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with
the base64-decoded secret), not by the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from notifier.cli import main
from notifier.delivery.formats import check_config
from notifier.signing import SignatureError, decode_secret, sign
from notifier.testing import WebhookReceiver
from tests.conftest import TEST_ENV, config_text

MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
BODY = b'{"test": 2432232314}'
SECRET = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, no whsec_ prefix
TOLERANCE = 300
#: The reference's known answer: this secret, id, time and body sign to this.
KNOWN = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1614265330,
         "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
#: A well-formed signature that is not the right one (the known answer, last char changed).
WRONG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="


def spec_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,`` + base64(HMAC-SHA256(base64decode(secret without whsec_), content))."""
    raw = secret.removeprefix("whsec_")
    key = base64.b64decode(raw + "=" * (-len(raw) % 4))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True)
class Scenario:
    """One request: signed with ``signer`` at ``skew`` seconds from now, checked with
    ``secret``; ``drop`` headers removed, ``replace`` headers overridden."""

    name: str
    ok: bool
    secret: str = SECRET
    signer: str | None = None
    skew: int = 0
    drop: tuple[str, ...] = ()
    replace: dict[str, str] = field(default_factory=dict)
    extra_signatures: tuple[str, ...] = ()

    def headers(self, now: int) -> dict[str, str]:
        timestamp = str(now + self.skew)
        signature = spec_signature(self.signer or self.secret, MSG_ID, timestamp, BODY)
        out = {"webhook-id": MSG_ID, "webhook-timestamp": timestamp,
               "webhook-signature": " ".join((*self.extra_signatures, signature))}
        out.update(self.replace)
        return {k: v for k, v in out.items() if k not in self.drop}


SCENARIOS = [
    Scenario("missing id", False, drop=("webhook-id",)),
    Scenario("missing timestamp", False, drop=("webhook-timestamp",)),
    Scenario("timestamp not a number", False, replace={"webhook-timestamp": "hello"}),
    Scenario("missing signature", False, drop=("webhook-signature",)),
    Scenario("wrong signature", False, replace={"webhook-signature": WRONG}),
    Scenario("valid", True),
    Scenario("timestamp 5 min + 1 s old", False, skew=-(TOLERANCE + 1)),
    Scenario("timestamp 5 min + 1 s in the future", False, skew=TOLERANCE + 1),
    Scenario("timestamp 5 min old, at the edge", True, skew=-TOLERANCE),
    Scenario("timestamp 5 min ahead, at the edge", True, skew=TOLERANCE),
    Scenario("several signatures, one valid", True, extra_signatures=(
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")),
    Scenario("secret with the whsec_ prefix", True, secret="whsec_" + SECRET, signer=SECRET),
    Scenario("secret needing one = of padding", True,
             secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"),
    Scenario("prefixed secret needing one = of padding", True,
             secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"),
    Scenario("secret needing == of padding", True, secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr"),
    Scenario("prefixed secret needing == of padding", True,
             secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr"),
]
#: Secrets the reference refuses to verify with.
EMPTY_SECRETS = ["", "whsec_"]
NOW = 1_800_000_000


def test_the_known_answer_signature_is_ours():
    """The reference's fixed example signs, byte for byte, as the notifier signs it."""
    secret, timestamp, expected = KNOWN
    body = BODY.decode()
    assert spec_signature(secret, MSG_ID, str(timestamp), BODY) == expected
    assert sign(decode_secret(secret), MSG_ID, timestamp, body.encode()) == expected


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda c: c.name)
def test_notifier_verify_agrees_with_the_reference(tmp_path, capsys, case):
    """`notifier verify` exits 0 exactly where the reference library accepts."""
    request = tmp_path / "request.json"
    headers = case.headers(NOW)
    request.write_text(_request_json(headers))
    code = main(["verify", "--secret", case.secret, "--request", str(request),
                 "--now", str(NOW)])
    out = capsys.readouterr().out
    assert (code == 0) is case.ok, out
    assert case.secret.removeprefix("whsec_") not in out


@pytest.mark.parametrize("secret", EMPTY_SECRETS)
def test_notifier_verify_refuses_an_empty_secret(tmp_path, capsys, secret):
    """An empty secret verifies nothing, and says so."""
    request = tmp_path / "request.json"
    request.write_text(_request_json(Scenario("valid", True).headers(NOW)))
    code = main(["verify", "--secret", secret, "--request", str(request), "--now", str(NOW)])
    assert code != 0 and "empty" in capsys.readouterr().out


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda c: c.name)
async def test_the_test_receiver_agrees_with_the_reference(case):
    """The suite's WebhookReceiver accepts (200, verified) exactly what the reference
    accepts, and answers 401 to the rest, a skewed sender clock included."""
    async with WebhookReceiver({"/hook": case.secret}) as rx, aiohttp.ClientSession() as s:
        headers = case.headers(int(time.time()))
        async with s.post(rx.url_for("/hook"), data=BODY, headers=headers) as answer:
            status = answer.status
    assert (status, rx.attempts[0].verified) == ((200, True) if case.ok else (401, False))


@pytest.mark.parametrize("secret", EMPTY_SECRETS)
def test_the_test_receiver_refuses_an_empty_secret(secret):
    """A receiver configured with an empty secret fails at once, not with 401s later."""
    with pytest.raises(SignatureError, match="empty"):
        WebhookReceiver({"/hook": secret})


@pytest.mark.parametrize("secret", sorted({c.secret for c in SCENARIOS}))
def test_check_accepts_every_secret_the_reference_signs_with(tmp_path, secret):
    """Each secret of the reference's scenarios is a valid webhook secret for `check`,
    and signs as the spec defines."""
    assert check_config(_config(tmp_path, secret), env=TEST_ENV) == []
    expected = spec_signature(secret, MSG_ID, "1", BODY)
    assert sign(decode_secret(secret), MSG_ID, 1, BODY) == expected


@pytest.mark.parametrize("secret", EMPTY_SECRETS)
def test_check_refuses_an_empty_secret(tmp_path, secret):
    """An empty secret is a check problem at webhooks.crm.secret."""
    problems = check_config(_config(tmp_path, secret), env=TEST_ENV)
    assert [p.key for p in problems] == ["webhooks.crm.secret"]
    assert "empty" in problems[0].message


def _config(tmp_path: Path, secret: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1/rpc", "http://127.0.0.1:2", rooms=["r1"],
                                webhooks={"crm": {"url": "http://127.0.0.1:2/crm",
                                                  "secret": secret}}))
    return str(path)


def _request_json(headers: dict[str, str]) -> str:
    import json

    return json.dumps({"headers": headers, "body": BODY.decode()})


async def test_check_warns_about_a_secret_shorter_than_the_spec_asks(tmp_path):
    """The reference's 23-byte secret passes `check` with a warning naming the webhook
    and the spec's 24 bytes, and never the secret; a 24-byte one gets no warning."""
    from tests.test_cli import run_cli

    short = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"
    code, out, err = await run_cli("check", "--config", _config(tmp_path, short),
                                   env=TEST_ENV)
    assert code == 0 and "OK" in out
    assert err.splitlines() == [
        f"warning: {tmp_path / 'rules.yaml'}: webhooks.crm.secret: secret 1 decodes to 23 "
        "bytes, fewer than the 24 random bytes the Standard Webhooks spec asks for; if you "
        "can choose it, make a longer one"]
    assert short.removeprefix("whsec_") not in out + err
    code, _, err = await run_cli("check", "--config", _config(tmp_path, SECRET), env=TEST_ENV)
    assert (code, err) == (0, "")
