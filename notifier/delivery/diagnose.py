"""Why a webhook request does or does not verify: a pure diagnosis for receivers' developers.

``diagnose`` checks a request the way ``standardwebhooks`` does (HMAC-SHA256 ``v1,``
signatures over ``{id}.{timestamp}.{body}``, a 5-minute timestamp tolerance) against one
or more secrets, or ed25519 ``v1a,`` signatures against ``whpk_`` public keys, and when
it fails, says which of the usual mistakes it is: a signature
pasted where the secret belongs, the wrong secret, a stale timestamp, a body changed on
the way (re-serialised JSON, a newline added or removed), missing headers. It never
repeats a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from notifier.signing import (
    Ed25519Key,
    PublicKey,
    SignatureError,
    decode_verifying_key,
    matches,
)

__all__ = ["Verdict", "diagnose"]

TOLERANCE = 300
_SPEC_MIN_BYTES = 24


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer: whether the request verifies, and the reasons in plain words."""

    ok: bool
    reasons: tuple[str, ...]


def diagnose(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now: int,
             tolerance: int = TOLERANCE) -> Verdict:
    """Check ``body`` and ``headers`` against each secret or public key; explain a failure."""
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
               if not lower.get(h)]
    if missing:
        return Verdict(False, (f"missing header(s): {', '.join(missing)}",))
    try:
        timestamp = int(lower["webhook-timestamp"])
    except ValueError:
        return Verdict(False, ("webhook-timestamp is not unix seconds",))
    keys, problems = _keys(secrets)
    if not keys:
        return Verdict(False, tuple(problems))
    given = [s for s in lower["webhook-signature"].split() if s.startswith(("v1,", "v1a,"))]
    if not given:
        return Verdict(False, ("webhook-signature holds no v1, or v1a, signature",))
    msg_id = lower["webhook-id"]
    matched = [n for n, key in keys if _matches(key, msg_id, timestamp, body, given)]
    if matched:
        return _fresh(matched, timestamp, now, tolerance)
    return Verdict(False, tuple(problems) + _why_not(keys, msg_id, timestamp, body, given))


def _keys(secrets: Sequence[str]) -> tuple[list[tuple[int, bytes]], list[str]]:
    keys, problems = [], []
    for n, secret in enumerate(secrets, 1):
        text = secret.strip()
        if text.startswith(("v1,", "v1a,")):
            problems.append(f"secret {n} starts with '{text.split(',')[0]},': that is a "
                            "signature from the webhook-signature header, not the secret; "
                            "use the whsec_... secret (or whpk_... public key) of the webhook")
            continue
        try:
            key = decode_verifying_key(text)
        except SignatureError as exc:
            problems.append(f"secret {n} {exc}")
            continue
        keys.append((n, key))
        if not isinstance(key, PublicKey | Ed25519Key) and len(key) < _SPEC_MIN_BYTES:
            # still tried (the reference library verifies with it), but often a cut paste
            problems.append(f"secret {n} decodes to {len(key)} bytes, fewer than the "
                            f"{_SPEC_MIN_BYTES} the spec asks for: is it the whole secret?")
    return keys, problems


def _matches(key: bytes, msg_id: str, timestamp: int, body: bytes, given: list[str]) -> bool:
    return matches(key, msg_id, timestamp, body, given)


def _fresh(matched: list[int], timestamp: int, now: int, tolerance: int) -> Verdict:
    which = ", ".join(f"secret {n}" for n in matched)
    age = now - timestamp
    if abs(age) > tolerance:
        where = "old" if age > 0 else "in the future"
        return Verdict(False, (f"the signature is valid ({which}) but the timestamp is "
                               f"{abs(age)}s {where} (tolerance {tolerance}s): a stale or "
                               "replayed request, or a wrong clock; verify on arrival",))
    return Verdict(True, (f"verified with {which}",))


def _variants(body: bytes) -> list[tuple[str, bytes]]:
    out = [("a trailing newline was removed", body + b"\n"),
           ("a trailing newline was added", body.rstrip(b"\r\n"))]
    try:
        doc = json.loads(body)
    except ValueError:
        return out
    for label, text in (("the JSON was re-serialised (spaces added)", json.dumps(doc)),
                        ("the JSON was re-serialised", json.dumps(
                            doc, ensure_ascii=False, separators=(",", ":")))):
        out.append((label, text.encode()))
    return out


def _why_not(keys: list[tuple[int, bytes]], msg_id: str, timestamp: int, body: bytes,
             given: list[str]) -> tuple[str, ...]:
    for label, variant in _variants(body):
        if variant != body and any(_matches(k, msg_id, timestamp, variant, given)
                                   for _, k in keys):
            return (f"the body changed after signing: {label}; verify the raw bytes "
                    "received, before any parsing",)
    return ("no signature matches: the secret is not the one this webhook uses, or the "
            "body, webhook-id or webhook-timestamp changed after signing",)
