"""notifier.util.json: orjson (when installed) and the standard library write and read alike."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import notifier.util.json
from notifier.util.json import _has_long_number, dumps_bytes, loads, loads_utf8

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def _both(obj: object, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    fast = dumps_bytes(obj)
    with monkeypatch.context() as patch:
        patch.setattr(notifier.util.json, "orjson", None)
        return fast, dumps_bytes(obj)


@given(_values)
def test_orjson_and_json_write_the_same_value(value: Any) -> None:
    """Any JSON value reads back equal from both encoders; without floats, the bytes are
    the same too (orjson may write 1e-05 as 0.00001)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, plain = _both({"v": value}, monkeypatch)
    assert loads(fast) == loads(plain) == {"v": value}
    if b"." not in plain and b"e" not in plain.lower().replace(b"true", b"").replace(
            b"false", b""):
        assert fast == plain


@pytest.mark.parametrize("value", [2**80, MappingProxyType({"a": [1]}), "\ud800 lone"])
def test_values_orjson_refuses_fall_back_to_the_standard_library(
        value: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big integer, a read-only mapping and a lone surrogate are still written."""
    if isinstance(value, str):
        with pytest.raises(UnicodeEncodeError):  # cannot be UTF-8: refused, never mangled
            dumps_bytes(value)
        return
    fast, plain = _both(value, monkeypatch)
    assert fast == plain


@pytest.mark.parametrize("text", [
    b'{"a":1,"a":2}', b"[1e400]", b"[NaN, -Infinity]",
    b"[123456789012345678901234567890, -9500000000000000000]",
    b'"\\ud800 lone"', b'"\\ud83d\\ude80"', b"[1.0000000000000002, -0.0, 5e-324]",
    b'{"k": "caf\\u00e9 \xe2\x98\x95"}',
], ids=["duplicate-key", "overflow", "nan", "big-int", "lone-surrogate", "pair", "floats",
        "unicode"])
def test_loads_reads_what_the_standard_library_reads(text: bytes) -> None:
    """Documents orjson reads differently or refuses come out as json.loads has them."""
    import json
    assert repr(loads(text)) == repr(json.loads(text))


def test_the_fast_encoder_is_there_to_compare() -> None:
    """The test extra installs orjson: without it the comparisons above compare json to json."""
    assert notifier.util.json.orjson is not None


_big_values = st.recursive(
    st.integers() | st.integers(2**63 - 2, 2**66) | st.integers(-(2**66), -(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.from_regex(r"[a-z ]{0,3}[0-9]{17,22}[a-z ]{0,3}", fullmatch=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(_big_values)
def test_long_digit_runs_in_numbers_and_strings_read_as_the_standard_library_reads(
        value: Any) -> None:
    """Integers of any size and strings holding 17-22 digits in a row (a snowflake id in a
    message's text): the value and its types are json.loads's, never a big integer
    turned into a float."""
    import json
    text = json.dumps({"v": value}).encode()
    assert repr(loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", [
    b'{"a": {"b": [1, 18446744073709551616]}, "t": "id 1234567890123456789"}',
    b'[{"n": -9223372036854775809}]', b'{"n": 18446744073709551615, "s": "0000000000000000000"}',
    b'{"m": {"text": "order 12345678901234567890", "n": 3}}',
], ids=["2**64-nested", "below-int64", "uint64-max", "digits-in-a-string"])
def test_documents_with_19_digit_runs_read_as_the_standard_library_reads(text: bytes) -> None:
    """A big integer anywhere in the tree is an integer; one that fits, or digits only in
    a string, read the same too."""
    import json
    assert repr(loads(text)) == repr(json.loads(text))


def _replaced(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a pair, well formed, stays)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if "\ud800" <= c <= "\udbff" and i + 1 < len(text) and "\udc00" <= text[i + 1] <= "\udfff":
            out.append(c + text[i + 1])
            i += 2
            continue
        out.append("\ufffd" if "\ud800" <= c <= "\udfff" else c)
        i += 1
    return "".join(out)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _replaced(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {_replaced(k): _scrubbed(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("text", "value"), [
    (b'{"b": "a \\ud83d half"}', {"b": "a \ufffd half"}),
    (b'{"b": "\\udc00\\ud800", "\\ud800k": 1}', {"b": "\ufffd\ufffd", "\ufffdk": 1}),
    (b'{"b": "\\ud83d\\ude80", "n": 1}', {"b": "\U0001f680", "n": 1}),
    (b'{"b": "\\ud83d", "n": 18446744073709551616}', {"b": "\ufffd", "n": 2**64}),
    (b'{"b": "\\ud83d\\ude80", "n": 18446744073709551616}', {"b": "\U0001f680", "n": 2**64}),
    (b'[{"b": ["x\\uDBFF"]}]', [{"b": ["x\ufffd"]}]),
    (b'{"b": "plain \\u00e9"}', {"b": "plain \u00e9"}),
], ids=["lone", "reversed-pair-and-key", "pair", "lone-and-big-int", "pair-and-big-int",
        "upper-case-nested", "no-surrogate"])
def test_loads_utf8_replaces_lone_surrogates_whichever_decoder_reads(
        text: bytes, value: Any) -> None:
    """A lone surrogate escape becomes U+FFFD (as Go's decoder has it), a pair its
    character, also in a document that only the standard library reads (a big integer)."""
    found = loads_utf8(text)
    assert repr(found) == repr(value)
    found_text = notifier.util.json.dumps_bytes(found)  # every string can be UTF-8 now
    assert loads(found_text) == value


#: Text with surrogates (lone, paired, in either order) among other characters.
#: (st.text drops surrogates whatever its alphabet: the strings are joined here)
_with_surrogates = st.lists(
    st.sampled_from("\ud800\udbff\udc00\udfff\ud83d\ude80") | st.characters(),
    max_size=6).map("".join)


@given(st.recursive(
    _with_surrogates | st.integers(-(2**66), 2**66),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_with_surrogates, inner, max_size=3),
    max_leaves=10))
def test_loads_utf8_reads_loads_value_with_lone_surrogates_replaced(value: Any) -> None:
    """Any document (strings with any code points, integers of any size): the value
    ``loads`` reads, each lone surrogate replaced, nothing else changed."""
    import json
    text = json.dumps({"v": value}).encode()
    assert repr(loads_utf8(text)) == repr(_scrubbed(loads(text)))


@pytest.mark.parametrize("run", [18, 19, 20, 25])
@pytest.mark.parametrize("offset", range(9))
def test_a_run_of_19_digits_is_found_wherever_it_starts(run: int, offset: int) -> None:
    """A run of 19 or more digits, at any offset and between any other bytes, sends the
    document to the standard library; 18 in a row do not (the quick search of every
    fourth byte must not miss a run however it falls)."""
    for before, after in ((b'"', b'"'), (b":", b","), (b"x-", b"}")):
        text = b"a" * offset + before + b"7" * run + after + b"0123-45678"
        assert _has_long_number(text) is (run >= 19), (text, run)
        assert _has_long_number(text.decode()) is (run >= 19)


@given(st.binary(max_size=120) | st.text("0123456789 :\"x", max_size=120).map(str.encode))
def test_has_long_number_is_a_search_for_19_digits_in_a_row(text: bytes) -> None:
    """``_has_long_number`` says exactly whether the text holds 19 ASCII digits in a row."""
    assert _has_long_number(text) is (re.search(rb"[0-9]{19}", text) is not None)
