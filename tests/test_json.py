"""notifier.util.json: orjson (when installed) and the standard library write and read alike."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import notifier.util.json
from notifier.util.json import dumps_bytes, loads

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
