"""Standard Webhooks signatures agree with the public `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from notifier.signing import (
    Ed25519Key,
    SignatureError,
    Signer,
    decode_secret,
    generate_key_pair,
    sign,
    sign_v1a,
    signature_headers,
    verify,
)


def new_secret(n: int = 32) -> str:
    return "whsec_" + base64.b64encode(os.urandom(n)).decode()


@settings(max_examples=50, deadline=None)
@given(document=st.dictionaries(st.text(max_size=20),
                                st.text(max_size=200) | st.integers() | st.booleans(),
                                max_size=10),
       n=st.integers(24, 64),
       msg_id=st.from_regex(r"msg_[a-z0-9]{1,30}", fullmatch=True))
def test_signatures_verify_with_the_standardwebhooks_package(document, n, msg_id):
    """Any JSON body signed by us verifies with the reference implementation."""
    body = json.dumps(document, ensure_ascii=False).encode()
    secret = new_secret(n)
    headers = signature_headers([decode_secret(secret)], msg_id, int(time.time()), body)
    Verifier(secret).verify(body, headers)


def test_a_changed_body_does_not_verify():
    """The reference verifier rejects a body changed after signing."""
    secret = new_secret()
    headers = signature_headers([decode_secret(secret)], "msg_1", int(time.time()), b"{}")
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(b'{"x":1}', headers)


def test_two_keys_give_two_signatures_each_verifying():
    """Rotation: a request signed with two keys verifies with either."""
    old, new = new_secret(), new_secret()
    headers = signature_headers([decode_secret(old), decode_secret(new)], "msg_1",
                                int(time.time()), b"{}")
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Verifier(secret).verify(b"{}", headers)


@pytest.mark.parametrize("bad", [
    "abc", "whsec_", "whsec_!!!notbase64", "whsec_" + base64.b64encode(b"short").decode(),
    "whsec_" + base64.b64encode(b"x" * 65).decode(),
])
def test_malformed_secrets_are_refused_without_echoing_them(bad):
    """A bad secret raises SignatureError whose message does not contain the secret."""
    with pytest.raises(SignatureError) as info:
        decode_secret(bad)
    assert bad.removeprefix("whsec_") not in str(info.value) or bad == "whsec_"


def test_stale_timestamps_are_refused_by_our_verifier():
    """verify() rejects a timestamp outside the tolerance."""
    key = decode_secret(new_secret())
    headers = signature_headers([key], "msg_1", 1000, b"{}")
    with pytest.raises(SignatureError, match="timestamp"):
        verify(key, headers, b"{}", now=1000 + 301)
    verify(key, headers, b"{}", now=1000 + 299)


_WHSK, _ = generate_key_pair()


@pytest.mark.parametrize("secrets", [
    [new_secret()],
    [new_secret(16), new_secret(64)],
    [_WHSK],
    [new_secret(), _WHSK, new_secret(24)],
    [b"k" * 65, b"k" * 64, b"k"],
], ids=["one whsec", "two whsec", "one whsk", "whsec whsk whsec", "raw keys around the block"])
def test_a_webhooks_signer_signs_as_signature_headers_does(secrets):
    """The transport's Signer (keys prepared once) gives signature_headers' headers, in
    the keys' order, each key's signature verifying; a second delivery is signed afresh."""
    keys = [s if isinstance(s, bytes) else decode_secret(s) for s in secrets]
    signer = Signer(keys)
    for msg_id, timestamp, body in [("msg_1", 1_700_000_000, b'{"a":1}'),
                                    ("msg_2", 1_700_000_001, b"")]:
        headers = signer.headers(msg_id, timestamp, body)
        # against the reference signers (hmac, cryptography), each key in its place
        expected = " ".join(sign_v1a(k, msg_id, timestamp, body) if isinstance(k, Ed25519Key)
                            else sign(k, msg_id, timestamp, body) for k in keys)
        assert headers == {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                           "webhook-signature": expected}
        assert headers == signature_headers(keys, msg_id, timestamp, body)
        for key in keys:
            verify(key, headers, body, now=timestamp)
    assert repr(signer) == f"Signer({len(keys)} keys)"  # no key material
