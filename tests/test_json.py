"""notifier._json: orjson (when installed) and the standard library write the same bytes."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import notifier._json
from notifier._json import dumps_bytes, loads

orjson = pytest.importorskip("orjson")

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def _both(obj: object, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    fast = dumps_bytes(obj)
    with monkeypatch.context() as patch:
        patch.setattr(notifier._json, "orjson", None)
        return fast, dumps_bytes(obj)


@given(_values)
def test_orjson_and_json_write_the_same_bytes(value: Any) -> None:
    """For any JSON value without non-finite floats the two encoders agree byte for byte."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, plain = _both({"v": value}, monkeypatch)
    assert fast == plain
    assert loads(fast) == {"v": value}


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
