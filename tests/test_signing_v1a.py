"""Asymmetric Standard Webhooks signatures (``v1a``, ed25519): keys, signing, verifying,
mixing with ``v1`` secrets, the receiver, ``notifier verify`` and the config."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook as Verifier

from notifier.errors import ConfigError
from notifier.runtime.logs import RedactionFilter, config_secrets
from notifier.signing import (
    Ed25519Key,
    SignatureError,
    decode_public_key,
    decode_secret,
    generate_key_pair,
    public_key_text,
    signature_headers,
    verify,
)
from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import SECRET, Outcomes, config_text, running
from tests.test_delivery_ops import cli

# RFC 8032, section 7.1, TEST 2: a private key (seed), its public key, and the signature
# of the one-byte message "r" (0x72).
RFC_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


RFC_WHSK = "whsk_" + b64(RFC_SEED)
RFC_WHPK = "whpk_" + b64(RFC_PUBLIC)


@pytest.mark.parametrize("text", [RFC_WHSK, "whsk_" + b64(RFC_SEED + RFC_PUBLIC)],
                         ids=["32-byte seed", "64-byte seed+public"])
def test_whsk_keys_decode_to_the_rfc_8032_key_pair(text):
    """Both key forms the reference libraries use give RFC 8032's public key and its
    signature of the test message."""
    key = decode_secret(text)
    assert isinstance(key, Ed25519Key)
    assert public_key_text(key) == RFC_WHPK
    assert key.private.sign(b"r") == RFC_SIGNATURE


def test_v1a_signature_covers_id_timestamp_and_body_and_verifies_with_the_public_key():
    """``v1a,<base64>`` is the ed25519 signature of ``{id}.{timestamp}.{body}``, checked
    here with the RFC public key through cryptography directly."""
    body = b'{"type":"message.created"}'
    headers = signature_headers([decode_secret(RFC_WHSK)], "msg_1", 1_700_000_000, body)
    version, _, signature = headers["webhook-signature"].partition(",")
    assert version == "v1a"
    Ed25519PublicKey.from_public_bytes(RFC_PUBLIC).verify(
        base64.b64decode(signature), b"msg_1.1700000000." + body)
    verify(decode_public_key(RFC_WHPK), headers, body, now=1_700_000_000)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(decode_public_key(RFC_WHPK), headers, body + b" ", now=1_700_000_000)


def test_a_mixed_secret_list_signs_once_per_key_and_each_side_verifies():
    """``[whsec_, whsk_]`` gives a v1 and a v1a signature: the reference verifier accepts
    the v1 one, the public key the v1a one, and a stranger's public key neither."""
    private, public = generate_key_pair()
    now = int(time.time())
    headers = signature_headers([decode_secret(SECRET), decode_secret(private)], "msg_1",
                                now, b"{}")
    assert [s.split(",")[0] for s in headers["webhook-signature"].split()] == ["v1", "v1a"]
    Verifier(SECRET).verify(b"{}", headers)
    verify(decode_public_key(public), headers, b"{}", now=now)
    with pytest.raises(SignatureError):
        verify(decode_public_key(generate_key_pair()[1]), headers, b"{}", now=now)


@pytest.mark.parametrize(("text", "says"), [
    ("whsk_" + b64(b"k" * 31), "decodes to 31 bytes"),
    ("whsk_" + b64(RFC_SEED + b"p" * 32), "second half is not the public key"),
    ("whsk_not base64!", "not valid base64"),
    (RFC_WHPK, "is a public key (whpk_)"),
])
def test_bad_signing_keys_are_refused_without_repeating_them(text, says):
    """Wrong lengths, a mismatched 64-byte key, bad base64 and a public key where the
    private key belongs each get their own message, which never holds the key."""
    with pytest.raises(SignatureError) as error:
        decode_secret(text)
    assert says in str(error.value)
    assert text[5:] not in str(error.value)


def test_whsk_values_are_redacted_from_logs(make_config):
    """A configured whsk_ key, and any whsk_-shaped text, never reach a log line."""
    private, _ = generate_key_pair()
    config = make_config(rooms=["r1"], webhooks={"crm": {
        "url": "http://127.0.0.1:9/crm", "secret": [SECRET, private]}})
    redactor = RedactionFilter(config_secrets(config))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s and %s", (
        private, "whsk_" + b64(b"z" * 32)), None)
    redactor.filter(record)
    assert "whsk_" + private[5:] not in record.getMessage()
    assert b64(b"z" * 32) not in record.getMessage()


def test_a_public_key_given_as_a_webhook_secret_is_a_config_error(make_config):
    """whpk_ in `secret` says where the private key goes, with file:line, not the key."""
    with pytest.raises(ConfigError) as error:
        make_config(rooms=["r1"], webhooks={"crm": {"url": "http://127.0.0.1:9/crm",
                                                    "secret": RFC_WHPK}})
    text = str(error.value)
    assert "webhooks.crm.secret" in text and "is a public key (whpk_)" in text
    assert RFC_WHPK[5:] not in text


async def test_the_receiver_verifies_v1a_deliveries_with_the_public_key(
        emulator: RoomlioEmulator, make_config):
    """A webhook signing with [whsec_, whsk_] is accepted by a receiver holding only the
    whpk_ key and by one holding only the whsec_ secret; a wrong whpk_ is answered 401
    (permanent: dead-lettered at once)."""
    private, public = generate_key_pair()
    emulator.add_room(key="r1")
    emulator.post("r1", "urgent refund")
    paths = {"/pk": public, "/sec": SECRET, "/wrong": generate_key_pair()[1]}
    async with WebhookReceiver(paths) as rx:
        hooks = {name: {"url": rx.url_for(path), "secret": [SECRET, private]}
                 for name, path in (("crm", "/pk"), ("mod", "/sec"), ("spy", "/wrong"))}
        rules = [{"name": "urgent", "keywords": ["urgent"], "notify": ["crm", "mod", "spy"]}]
        config = make_config(rooms=["r1"], webhooks=hooks, rules=rules)
        outcomes = Outcomes()
        async with running(config, outcomes):
            await outcomes.wait_for(lambda o: len(o.items) == 3)
    assert {r.path: r.verified for r in rx.received} == {"/pk": True, "/sec": True}
    assert [(a.verified, a.status) for a in rx.attempts if a.path == "/wrong"] == [
        (False, 401)]
    assert [o.delivery.webhook for o in outcomes.failed] == ["spy"]


async def test_verify_command_checks_v1a_with_a_public_key(tmp_path: Path):
    """`notifier verify --public-key whpk_...` exits 0 for a v1a-signed request and 1 for
    one signed by another key."""
    private, public = generate_key_pair()
    body = b'{"type":"message.created"}'
    request = tmp_path / "req.json"
    headers = signature_headers([decode_secret(private)], "msg_1", int(time.time()), body)
    request.write_text(json.dumps({"headers": headers, "body": body.decode()}))
    code, out, _ = await cli("verify", "--public-key", public, "--request", str(request))
    assert (code, out.strip()) == (0, "OK: verified with secret 1")
    code, out, _ = await cli("verify", "--public-key", generate_key_pair()[1],
                             "--request", str(request))
    assert code == 1 and "no signature matches" in out
    assert private[5:] not in out


async def test_webhook_public_key_prints_the_whpk_of_each_whsk_and_nothing_secret(
        tmp_path: Path, emulator: RoomlioEmulator, receiver: WebhookReceiver):
    """`notifier webhook public-key crm` prints the public key of each whsk_ in its
    secret list and never a secret; a webhook without one exits 1 and says why."""
    private, public = generate_key_pair()
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emulator.url, receiver.url, rooms=["r1"], webhooks={
        "crm": {"url": f"{receiver.url}/crm", "secret": [SECRET, private, RFC_WHSK]}}))
    code, out, err = await cli("webhook", "public-key", "crm", "--config", str(path))
    assert (code, out.split()) == (0, [public, RFC_WHPK]), err
    code, out2, err2 = await cli("webhook", "public-key", "mod", "--config", str(path))
    assert code == 1 and out2 == "" and "has no whsk_ key" in err2
    for text in (out, err, out2, err2):
        assert private[5:] not in text and SECRET[6:] not in text
