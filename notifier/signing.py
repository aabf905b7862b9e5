"""Standard Webhooks signatures: pure functions, no I/O.

Two schemes sign the same content, ``{id}.{timestamp}.{body}``:

* ``v1,`` + base64(HMAC-SHA256(key, content)), where the secret ``whsec_<base64>`` is
  shared with the receiver;
* ``v1a,`` + base64(ed25519 signature of content), signed with a private key
  ``whsk_<base64>`` and checked by the receiver with the public key ``whpk_<base64>``.

The spec says only "base64 encoded" for ed25519 keys; the reference libraries' drafts
read ``whsk_`` either as the 32-byte seed (RFC 8032's private key; Go's NewKeyFromSeed)
or as the 64-byte seed-and-public-key (Go's and libsodium's ed25519.PrivateKey). Both
are accepted here (a 64-byte key must carry its own public key); ``generate_key_pair``
writes the 32-byte seed. ``whpk_`` is the 32-byte public key. Several signatures are
separated by spaces (secret rotation, or one of each scheme).

Secrets are read as the reference library reads them: the ``whsec_`` prefix may be left
out and the base64 padding too. A receiver's key may be any non-empty length (it is the
receiver's to choose); a key the notifier signs with must be 16 to 64 bytes: the spec
asks 24 to 64 random bytes of whoever generates one, and the reference's own test
secrets include a 23-byte one; below 16 bytes (128 bits) an HMAC key is too weak.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

# cryptography is imported where an ed25519 key is used, not here: a deployment signing
# with ``whsec_`` secrets only never loads it (its Rust extension is a large part of a
# 10,000-room process's memory: bench/RESULTS.md, "Memory at 10,000 rooms, again").
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "PRIVATE_KEY_PREFIX",
    "PUBLIC_KEY_PREFIX",
    "SECRET_PREFIX",
    "Ed25519Key",
    "PublicKey",
    "SignatureError",
    "Signer",
    "decode_public_key",
    "decode_secret",
    "decode_verifying_key",
    "generate_key_pair",
    "matches",
    "public_key_text",
    "sign",
    "sign_v1a",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 64
_GENERATE = ("python -c \"import os,base64;print('whsec_'+base64.b64encode(os.urandom(32))"
             ".decode())\"")
_SEED_BYTES = 32


class SignatureError(ValueError):
    """A secret is malformed or a request does not verify."""


class Ed25519Key(bytes):
    """A ``v1a`` signing key: the bytes after ``whsk_`` (a 32-byte seed, or 64 bytes: the
    seed then its public key). Kept as given, so log redaction finds the configured text."""

    def __eq__(self, other: object) -> bool:  # never equal to an HMAC key of the same bytes
        return isinstance(other, Ed25519Key) and bytes.__eq__(self, other)

    __hash__ = bytes.__hash__

    @property
    def private(self) -> Ed25519PrivateKey:
        """The key, ready to sign."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(bytes(self[:_SEED_BYTES]))

    @property
    def public(self) -> PublicKey:
        """The matching public key (what receivers verify ``v1a`` signatures with)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return PublicKey(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


class PublicKey(bytes):
    """A ``v1a`` verifying key: the 32 bytes after ``whpk_``."""


def _b64(text: str, prefix: str) -> bytes:
    """The bytes of the base64 after ``prefix``; its ``=`` padding may be left out."""
    encoded = text[len(prefix):]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        where = f"the part after '{prefix}'" if prefix else "the secret"
        raise SignatureError(f"{where} is not valid base64") from None


def _shared_key(secret: str) -> bytes:
    """An HMAC key, ``whsec_`` prefix or not (as the reference library reads it)."""
    key = _b64(secret, SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else "")
    if not key:
        raise SignatureError("is empty; give the whsec_<base64> secret of the webhook")
    return key


def _hmac_key(secret: str) -> bytes:
    key = _shared_key(secret)
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise SignatureError(f"decodes to {len(key)} bytes; use {MIN_SECRET_BYTES} to "
                             f"{MAX_SECRET_BYTES} random bytes (for example: {_GENERATE})")
    return key


def _ed25519_key(secret: str) -> bytes:
    key = Ed25519Key(_b64(secret, PRIVATE_KEY_PREFIX))
    if len(key) not in (_SEED_BYTES, 2 * _SEED_BYTES):
        raise SignatureError(
            f"decodes to {len(key)} bytes; an ed25519 private key is 32 bytes (or 64: the "
            "key then its public key); make a pair with python -c \"from notifier.delivery."
            "signing import generate_key_pair; print(*generate_key_pair(), sep='\\n')\"")
    if len(key) > _SEED_BYTES and key[_SEED_BYTES:] != key.public:
        raise SignatureError("is 64 bytes but its second half is not the public key of the "
                             "first; give the 32-byte private key alone")
    return key


def _public_only(_secret: str) -> bytes:
    raise SignatureError("is a public key (whpk_): it verifies signatures but cannot make "
                         "them; put the whsk_ private key here and give the whpk_ key to "
                         "the receiver")


#: How each kind of secret is decoded, by prefix.
_SIGNING_KEYS: dict[str, Callable[[str], bytes]] = {
    SECRET_PREFIX: _hmac_key,
    PRIVATE_KEY_PREFIX: _ed25519_key,
    PUBLIC_KEY_PREFIX: _public_only,
}


def decode_secret(secret: str) -> bytes:
    """Decode a signing secret: ``whsec_<base64>`` (or the base64 alone) to an HMAC key
    (plain bytes), or ``whsk_<base64>`` to an Ed25519Key. The message never contains the
    secret."""
    for prefix, decode in _SIGNING_KEYS.items():
        if secret.startswith(prefix):
            return decode(secret)
    try:
        _b64(secret, "")
    except SignatureError:
        raise SignatureError("must start with 'whsec_' (a shared secret) or 'whsk_' (an "
                             "ed25519 private key) followed by base64") from None
    return _hmac_key(secret)  # the reference library reads bare base64 as a whsec_ secret


def decode_public_key(text: str) -> PublicKey:
    """Decode ``whpk_<base64>``, the 32-byte ed25519 public key."""
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise SignatureError("must start with 'whpk_' followed by base64")
    key = _b64(text, PUBLIC_KEY_PREFIX)
    if len(key) != _SEED_BYTES:
        raise SignatureError(f"decodes to {len(key)} bytes; an ed25519 public key is 32")
    return PublicKey(key)


def decode_verifying_key(text: str) -> bytes:
    """A key a receiver checks requests with: ``whsec_`` (or its base64 alone; any
    non-empty length, as the reference library accepts), ``whpk_`` or even ``whsk_``."""
    if text.startswith(PUBLIC_KEY_PREFIX):
        return decode_public_key(text)
    if text.startswith(PRIVATE_KEY_PREFIX):
        return decode_secret(text)
    return _shared_key(text)


def public_key_text(key: Ed25519Key) -> str:
    """``whpk_<base64>``: the public key of ``key``, safe to hand to receivers."""
    return PUBLIC_KEY_PREFIX + base64.b64encode(key.public).decode()


def generate_key_pair() -> tuple[str, str]:
    """A new (``whsk_`` private key, ``whpk_`` public key) pair."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    seed = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return (PRIVATE_KEY_PREFIX + base64.b64encode(seed).decode(),
            public_key_text(Ed25519Key(seed)))


def _prefix(msg_id: str, timestamp: int) -> bytes:
    return f"{msg_id}.{timestamp}.".encode()


def _content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return _prefix(msg_id, timestamp) + body


@functools.lru_cache(maxsize=256)
def _keyed(key: bytes) -> hmac.HMAC:
    """The HMAC state after the key: copied per signature rather than keyed again."""
    return hmac.new(key, digestmod=hashlib.sha256)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` under the HMAC ``key``."""
    mac = _keyed(bytes(key)).copy()
    mac.update(_prefix(msg_id, timestamp))
    mac.update(body)  # not _content: no copy of the body
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign_v1a(key: Ed25519Key, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1a,<base64>`` ed25519 signature of ``body``."""
    signature = key.private.sign(_content(msg_id, timestamp, body))
    return "v1a," + base64.b64encode(signature).decode()


def signature_headers(keys: Sequence[bytes], msg_id: str, timestamp: int,
                      body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every key given (each in its
    scheme: ``v1`` for HMAC keys, ``v1a`` for Ed25519Keys); a transport keeps a ``Signer``
    instead, its keys prepared once."""
    return Signer(keys).headers(msg_id, timestamp, body)


_SignOne = Callable[[bytes, bytes], str]
"""One key's signature of ``prefix + body`` (``prefix`` is ``{id}.{timestamp}.``)."""
_BLOCK = hashlib.sha256().block_size


def _prepared(key: bytes) -> _SignOne:
    """``key`` made ready to sign: an Ed25519 private key built once, not per signature;
    an HMAC key as RFC 2104's two SHA-256 states, the padded key already hashed into each
    (what ``hmac`` does per ``new``; copying hashlib's states skips its Python wrapper)."""
    if isinstance(key, Ed25519Key):
        private = key.private

        def sign_ed25519(prefix: bytes, body: bytes) -> str:
            return "v1a," + binascii.b2a_base64(private.sign(prefix + body),
                                                newline=False).decode()
        return sign_ed25519
    padded = (hashlib.sha256(key).digest() if len(key) > _BLOCK else bytes(key)).ljust(
        _BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def sign_hmac(prefix: bytes, body: bytes) -> str:
        mac = inner.copy()
        mac.update(prefix)
        mac.update(body)  # not prefix + body: no copy of the body
        digest = outer.copy()
        digest.update(mac.digest())
        return "v1," + binascii.b2a_base64(digest.digest(), newline=False).decode()
    return sign_hmac


class Signer:
    """``signature_headers`` for one webhook's keys, each prepared once: what the
    transport signs every delivery with. Holds the keys; prints none of them."""

    __slots__ = ("_sign",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._sign = tuple(_prepared(k) for k in keys)

    def __repr__(self) -> str:
        return f"Signer({len(self._sign)} keys)"

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` header: one signature per key, in the keys' order."""
        prefix = f"{msg_id}.{timestamp}.".encode()
        signs = self._sign
        if len(signs) == 1:
            return signs[0](prefix, body)
        return " ".join([sign(prefix, body) for sign in signs])

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers (``signature_headers`` of these keys)."""
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": self.signature(msg_id, timestamp, body)}


def _ed25519_matches(public: bytes, content: bytes, given: Sequence[str]) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    verifier = Ed25519PublicKey.from_public_bytes(bytes(public))
    for sig in given:
        version, _, encoded = sig.partition(",")
        if version != "v1a":
            continue
        try:
            verifier.verify(base64.b64decode(encoded, validate=True), content)
        except (InvalidSignature, binascii.Error, ValueError):
            continue
        return True
    return False


def matches(key: bytes, msg_id: str, timestamp: int, body: bytes, given: Sequence[str]) -> bool:
    """Whether one of the ``given`` signatures is ``key``'s: ``v1`` for an HMAC key,
    ``v1a`` for a PublicKey (or an Ed25519Key, through its public key)."""
    if isinstance(key, Ed25519Key):
        key = key.public
    if isinstance(key, PublicKey):
        return _ed25519_matches(key, _content(msg_id, timestamp, body), given)
    expected = sign(key, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in given)


def verify(key: bytes, headers: Mapping[str, str], body: bytes, *, now: int,
           tolerance: int = 300) -> None:
    """Raise SignatureError unless ``headers`` carry a valid, fresh signature of ``body``
    by ``key`` (an HMAC key, a PublicKey or an Ed25519Key)."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        given = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook-* headers") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is more than {tolerance}s from now")
    if not matches(key, msg_id, timestamp, body, given):
        raise SignatureError("no signature matches")
