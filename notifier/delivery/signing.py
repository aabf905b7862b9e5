"""Standard Webhooks signatures: pure functions, no I/O.

``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")),
where the secret is the base64 text after ``whsec_``. Several signatures are separated by
spaces (secret rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

__all__ = [
    "SECRET_PREFIX",
    "SignatureError",
    "decode_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class SignatureError(ValueError):
    """A secret is malformed or a request does not verify."""


def decode_secret(secret: str) -> bytes:
    """Decode ``whsec_<base64>`` to the HMAC key; the message never contains the secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise SignatureError("must start with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the part after 'whsec_' is not valid base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise SignatureError(
            f"decodes to {len(key)} bytes; use {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} "
            "random bytes (for example: python -c \"import os,base64;"
            "print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")"
        )
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` under ``key``."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.digest(key, to_sign, hashlib.sha256)
    return "v1," + base64.b64encode(mac).decode()


def signature_headers(keys: Sequence[bytes], msg_id: str, timestamp: int,
                      body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every key given."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(k, msg_id, timestamp, body) for k in keys),
    }


def verify(key: bytes, headers: Mapping[str, str], body: bytes, *, now: int,
           tolerance: int = 300) -> None:
    """Raise SignatureError unless ``headers`` carry a valid, fresh signature of ``body``."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        given = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook-* headers") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is more than {tolerance}s from now")
    expected = sign(key, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, sig) for sig in given):
        raise SignatureError("no signature matches")
