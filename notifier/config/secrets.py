"""Warnings about valid webhook secrets (``notifier check`` prints them).

A secret of 16 to 23 bytes is accepted, because the receiver's platform may have issued
it (the Standard Webhooks reference library's own test secret is 23 bytes), but the spec
asks 24 to 64 random bytes of whoever makes one: ``check`` says so, without the value.
"""

from __future__ import annotations

from notifier.config.model import Config
from notifier.errors import Problem
from notifier.signing import Ed25519Key

__all__ = ["SPEC_MIN_SECRET_BYTES", "secret_warnings"]

SPEC_MIN_SECRET_BYTES = 24


def secret_warnings(config: Config, file: str) -> list[Problem]:
    """One warning per HMAC secret shorter than the spec's 24 bytes, in webhook order."""
    return [Problem(file, None, f"webhooks.{name}.secret",
                    f"secret {i} decodes to {len(key)} bytes, fewer than the "
                    f"{SPEC_MIN_SECRET_BYTES} random bytes the Standard Webhooks spec asks "
                    "for; if you can choose it, make a longer one")
            for name, hook in config.webhooks.items()
            for i, key in enumerate(hook.secrets, 1)
            if not isinstance(key, Ed25519Key) and len(key) < SPEC_MIN_SECRET_BYTES]
