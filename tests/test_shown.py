"""One escaping rule for remote text, and one list of a webhook's secrets, shared by the
logs, the Roomlio client and delivery error texts (none lets through what another hides)."""

from __future__ import annotations

import base64

import pytest

from notifier.config import Webhook
from notifier.delivery.errortext import MAX_ERROR_TEXT, Scrubber
from notifier.runtime.logs import RedactionFilter, escape_controls
from notifier.util.redaction import webhook_secrets
from notifier.util.shown import escape, shown

#: Each was escaped by one of the three former escapers and not by another.
UNPRINTABLE = ["\n", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u202e", "\u2067",
               "\u200e", "\u200f", "\ud800", "\u00ad", "\u200b", "\ufeff", "\u00a0",
               "\U000e0041"]


@pytest.mark.parametrize("char", UNPRINTABLE)
def test_every_reader_escapes_the_same_characters(char):
    text = f"a{char}b"
    expected = "a" + ascii(char)[1:-1] + "b"
    assert escape(text) == escape_controls(text) == shown(text) == expected
    assert Scrubber([])(text) == expected


def test_a_cut_never_splits_an_escape():
    assert shown("abc\x1bdef", 5) == "abc…"  # not "abc\\x…"
    assert shown("abcdef", 5) == "abcde…" and shown("abcde", 5) == "abcde"
    assert len(Scrubber([])("\x00" * 400)) <= MAX_ERROR_TEXT


def test_the_logs_and_error_texts_know_the_same_secret_spellings():
    key = b"q" * 32
    bare = base64.b64encode(key).decode().rstrip("=")
    secrets = webhook_secrets("crm", "https://h.example/a/b", (key,), {})
    assert secrets[bare] == "webhooks.crm.secret"
    hook = Webhook("crm", url="https://h.example/a/b", secrets=(key,))
    assert Scrubber([hook])(f"bad {bare}!") == "bad [webhooks.crm.secret]!"
    assert RedactionFilter(secrets).redact(f"bad {bare}!") == "bad [webhooks.crm.secret]!"
