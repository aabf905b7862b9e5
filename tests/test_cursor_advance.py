"""Cursor arithmetic: under every reading of the API, the cursor never skips a message."""

from __future__ import annotations

import pytest

from notifier.errors import RoomlioTransientError
from notifier.polling.client import Page, parse_page
from notifier.polling.position import CLOCK_SKEW, advance, ahead
from notifier.store import RoomState
from notifier.util.time import parse_time

#: The local clock in these tests: 2026-11-25T12:00:00Z.
NOW = 1795608000.0


def msg(i: int, created: str = "2026-11-25T10:00:00Z") -> dict:
    return {"id": f"msg_{i:04d}", "createdAt": created}


@pytest.mark.parametrize(("page", "cursor"), [
    (Page((msg(1), msg(2)), True, "msg_0003"), "msg_0003"),     # inclusive reading
    (Page((msg(1), msg(2)), True, "msg_0002"), "msg_0002"),     # exclusive reading
    (Page((msg(1), msg(2)), True, ""), "msg_0002"),             # hasMore, empty nextCursor
    (Page((msg(1), msg(2)), False, ""), "msg_0002"),            # end, empty nextCursor
    (Page((msg(1), msg(2)), False, "msg_0009"), "msg_0002"),    # end, cursor ignored
    (Page((), False, ""), "msg_0000"),                          # nothing new
])
def test_cursor_resumes_at_or_before_the_first_unseen_message(page, cursor):
    """After a page, the cursor is the server's next cursor or the last id we processed."""
    state = RoomState("r", cursor="msg_0000", last_id="msg_0000")
    assert advance(state, page, now=NOW).cursor == cursor


def test_has_more_without_any_cursor_is_an_error_not_a_skip():
    """hasMore with no messages and no nextCursor is retried, never taken as progress."""
    with pytest.raises(RoomlioTransientError):
        advance(RoomState("r", cursor="msg_0000"), Page((), True, ""), now=NOW)


def built(*messages: dict) -> Page:
    """A page built by hand: the tail reads each message's createdAt."""
    return Page(messages, False, "")


def parsed(*messages: dict) -> Page:
    """A page as the client gives it: the parser has read the newest createdAt."""
    return parse_page({"messages": list(messages), "hasMore": False})


BOTH = pytest.mark.parametrize("make", [built, parsed])


@BOTH
def test_high_water_is_the_newest_created_at_even_out_of_order(make):
    """An out-of-order page still records its newest createdAt."""
    page = make(msg(2, "2026-11-25T10:00:05Z"), msg(1, "2026-11-25T10:00:01Z"))
    state = advance(RoomState("r", high_water="2026-11-25T09:00:00Z"), page, now=NOW)
    assert state.high_water == "2026-11-25T10:00:05Z"


@BOTH
def test_a_page_older_than_the_resume_point_leaves_it_where_it_was(make):
    """Messages read again (an overlap after a lost cursor) never move the resume point back."""
    page = make(msg(1, "2026-11-25T08:00:00Z"), msg(2, "2026-11-25T08:30:00+01:00"))
    state = advance(RoomState("r", high_water="2026-11-25T09:00:00Z"), page, now=NOW)
    assert state.high_water == "2026-11-25T09:00:00Z"


@BOTH
def test_a_message_ahead_of_the_clock_leaves_the_others_on_the_page_to_count(make):
    """One far-future createdAt on a page: the newest of the others is the resume point,
    and ``ahead`` names the far one, whether or not the page knows its newest time."""
    page = make(msg(1, "2026-11-25T10:00:00Z"), msg(2, "9999-01-01T00:00:00Z"),
                msg(3, "2026-11-25T11:00:00Z"))
    state = advance(RoomState("r", high_water="2026-11-25T09:00:00Z"), page, now=NOW)
    assert state.high_water == "2026-11-25T11:00:00Z"
    assert [m["id"] for m in ahead(page.messages, NOW, page.newest)] == ["msg_0002"]
    assert ahead(page.messages[:1], NOW, parsed(msg(1)).newest) == []


@BOTH
@pytest.mark.parametrize(("created", "high_water"), [
    ("9999-12-31T23:59:59Z", "2026-11-25T09:00:00Z"),      # far ahead: not a resume point
    ("9999-12-31T23:59:59-01:00", "2026-11-25T09:00:00Z"),  # past the calendar, too
    ("2026-11-25T12:00:30Z", "2026-11-25T12:00:30Z"),       # within the skew allowed
    ("2026-11-25T12:05:00Z", "2026-11-25T09:00:00Z"),       # beyond it
])
def test_a_created_at_ahead_of_the_clock_never_becomes_the_resume_point(created, high_water,
                                                                        make):
    """The resume point moves to a createdAt at most CLOCK_SKEW ahead of the local clock."""
    page = make(msg(1, created))
    state = advance(RoomState("r", high_water="2026-11-25T09:00:00Z"), page, now=NOW)
    assert state.high_water == high_water
    assert state.cursor == "msg_0001"  # the message itself is processed as usual


def test_the_test_clock_is_what_the_table_assumes():
    """NOW is 12:00:00Z, and the skew allowed is a minute."""
    assert parse_time("2026-11-25T12:00:00Z").timestamp() == NOW
    assert CLOCK_SKEW == 60.0
