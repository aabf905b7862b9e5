"""The page parser's quick path against the definition: ``parse_page`` keeps exactly the
messages ``check_message`` passes, in order, with their defects, tail position and newest
``createdAt`` as the plain reading of each message gives them, whatever mix a page holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.polling.pages import Defect, check_message, message_id, parse_page, without_id
from notifier.util.json import dumps_bytes, loads
from notifier.util.keys import MAX_KEYS, own_keys
from notifier.util.time import parse_time

#: createdAt spellings: repeats of one instant in several spellings, times that are no
#: times, padded ones, and other types.
_CREATED = st.sampled_from([
    "2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z", "2026-11-25T12:00:00+02:00",
    "2026-11-25T10:00:01Z", "2026-11-25T09:59:59.500000Z", "2026-11-25T10:00:00",
    " 2026-11-25T10:00:02Z ", "9999-12-31T23:59:59-01:00", "never", "", 7, None,
])
#: A value of each JSON type, for any checked field.
_ANY = st.sampled_from([None, "", "x", "2026-11-25T10:00:00Z", 7, 1.5, True, [], ["l"], {},
                        {"a": 1}])
_FIELDS = ("id", "createdAt", "body", "editedAt", "messageType", "userType", "roomID",
           "links", "userID")


def _message(i: int) -> dict[str, Any]:
    return {"id": f"msg_{i:04d}", "userID": "usr_x", "visibility": "", "username": "",
            "first": "", "last": "", "roomName": "", "userType": "member", "body": "hi",
            "messageType": "user", "links": [], "roomID": "rm_x",
            "createdAt": "2026-11-25T10:00:00Z", "editedAt": "0001-01-01T00:00:00Z"}


@st.composite
def _messages(draw: st.DrawFn) -> Any:
    """Mostly well-formed messages with drawn createdAt spellings; some with a field of
    another type or left out, some with extra keys, some no object at all."""
    i = draw(st.integers(0, 9999))
    shape = draw(st.sampled_from(["usual"] * 6 + ["field", "missing", "extra", "other"]))
    if shape == "other":
        return draw(st.sampled_from(["text", 3, None, [_message(i)], True]))
    msg = _message(i)
    msg["createdAt"] = draw(_CREATED)
    if shape == "field":
        msg[draw(st.sampled_from(_FIELDS))] = draw(_ANY)
    elif shape == "missing":
        del msg[draw(st.sampled_from(_FIELDS))]
    elif shape == "extra":
        msg = {f"k{n}": n for n in range(draw(st.sampled_from([1, 70])))} | msg
    return msg


def _reference(messages: list[Any]) -> tuple[list[Any], list[Defect], str, Any]:
    """What the page holds by definition, one message at a time."""
    good, defects, last_id, times = [], [], "", []
    for i, msg in enumerate(messages):
        reason = check_message(msg)
        if reason is None:
            good.append(msg)
            times.append(parse_time(msg["createdAt"]))
        else:
            defects.append(Defect(i, reason, msg))
        last_id = message_id(msg) or last_id
    return good, defects, last_id, max(times) if times else None


@given(st.lists(_messages(), max_size=12), st.booleans())
def test_a_page_holds_what_reading_each_message_alone_gives(messages: list[Any],
                                                            wire: bool) -> None:
    """Kept messages (the same objects, in order), defects with their index and reason,
    the last usable id and the newest createdAt of the kept ones, for any mix; ``wire``:
    the page decoded from JSON, as off the wire (its messages share key objects)."""
    if wire:
        messages = loads(dumps_bytes(messages))
    page = parse_page({"messages": messages, "hasMore": False})
    good, defects, last_id, newest = _reference(messages)
    assert [id(m) for m in page.messages] == [id(m) for m in good]
    assert list(page.defects) == defects
    assert page.last_id == last_id
    assert page.newest == newest
    if newest is not None:
        assert page.newest is not None and page.newest.utcoffset() == newest.utcoffset()


def test_a_repeated_created_at_is_judged_each_time_it_comes() -> None:
    """Messages in a row with one createdAt spelling: a good one kept each time, a bad
    one a defect each time, and the newest is the latest of the spellings."""
    def at(i: int, created: str) -> dict[str, Any]:
        return {**_message(i), "createdAt": created}
    messages = [at(1, "2026-11-25T10:00:00Z"), at(2, "2026-11-25T10:00:00Z"),
                at(3, "never"), at(4, "never"), at(5, "2026-11-25T10:00:05Z"),
                at(6, "2026-11-25T10:00:05Z"), at(7, "2026-11-25T10:00:01Z")]
    page = parse_page({"messages": loads(dumps_bytes(messages))})
    assert [m["id"] for m in page.messages] == ["msg_0001", "msg_0002", "msg_0005",
                                                 "msg_0006", "msg_0007"]
    assert [d.index for d in page.defects] == [2, 3]
    assert page.newest == parse_time("2026-11-25T10:00:05Z")
    assert page.last_id == "msg_0007"


@given(st.lists(_messages(), max_size=12), st.booleans(), st.integers(0, 2))
def test_without_id_drops_exactly_the_messages_with_that_id(messages: list[Any], wire: bool,
                                                          repeats: int) -> None:
    """The tail's ``fresh`` messages: a page's well-formed messages but those whose id is
    the one the tail stands on (any of the page's, once or more, or none of them), the
    same objects in order."""
    messages = messages + messages[:repeats]
    if wire:
        messages = loads(dumps_bytes(messages))
    kept = parse_page({"messages": messages}).messages
    for ident in [*(m["id"] for m in kept), "msg_absent", "", None]:
        fresh = without_id(kept, ident)
        assert [id(m) for m in fresh] == [id(m) for m in kept if m["id"] != ident]


def test_without_id_at_either_end_of_a_decoded_page() -> None:
    """The inclusive reading's repeat (the first message) and a last message with the id
    are dropped; a page without it comes back as it is."""
    kept = parse_page(loads(dumps_bytes(
        {"messages": [_message(1), _message(2), _message(3), _message(1)]}))).messages
    assert [m["id"] for m in without_id(kept, "msg_0001")] == ["msg_0002", "msg_0003"]
    assert [m["id"] for m in without_id(kept, "msg_0003")] == ["msg_0001", "msg_0002",
                                                               "msg_0001"]
    assert without_id(kept, "msg_0009") is kept
    once = kept[:3]
    assert [m["id"] for m in without_id(once, "msg_0001")] == ["msg_0002", "msg_0003"]
    assert [m["id"] for m in without_id(once, "msg_0003")] == ["msg_0001", "msg_0002"]


@pytest.mark.parametrize(("first", "own"), [
    ({"id": 1, "body": 2}, (True, True, False)),
    ({f"k{n}": n for n in range(MAX_KEYS - 2)} | {"id": 1, "body": 2}, (True, True, False)),
    ({f"k{n}": n for n in range(MAX_KEYS)} | {"id": 1}, (False, False, False)),
    ([("id", 1)], (False, False, False)),
    (None, (False, False, False)),
], ids=["small", "at-the-limit", "too-many-keys", "not-a-dict", "none"])
def test_own_keys_are_the_first_objects_own_where_it_has_them(first: Any,
                                                             own: tuple[bool, ...]) -> None:
    """Each name becomes the first object's own key object equal to it (the same text)
    where it is a dict of at most MAX_KEYS keys holding it; the name itself otherwise."""
    first = loads(dumps_bytes(first)) if isinstance(first, dict) else first
    names = ("id", "body", "links")
    asked = ["".join(name) for name in names]  # new objects, none of them the first's
    found = own_keys(first, asked)
    assert found == names
    for key, name, is_own in zip(found, asked, own, strict=True):
        assert (key is not name) is is_own
