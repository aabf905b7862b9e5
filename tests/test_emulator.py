"""The Roomlio emulator, exercised over real HTTP as the notifier's client will use it."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from notifier.testing import Fault, RoomlioEmulator, simulate_chatter
from notifier.testing.ids import new_id

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ID_RE = re.compile(r"^msg_[0-9a-v]{20}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Reply:
    """What a RoomHistory call answered."""

    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def ids(self) -> list[str]:
        return [m["id"] for m in self.json["messages"]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def emu() -> AsyncIterator[RoomlioEmulator]:
    async with RoomlioEmulator() as e:
        yield e


async def call(session: aiohttp.ClientSession, emu: RoomlioEmulator, *,
               key: str | None = "test-key",
               raw: bytes | None = None, client_timeout: float = 10, **params: Any) -> Reply:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = raw if raw is not None else json.dumps(params).encode()
    async with session.post(f"{emu.url}/RoomHistory", data=data, headers=headers,
                            timeout=aiohttp.ClientTimeout(total=client_timeout)) as resp:
        return Reply(resp.status, resp.headers, await resp.read())


def fill(emu: RoomlioEmulator, n: int, room: str | None = None) -> tuple[str, list[str]]:
    room = room or emu.add_room()
    return room, [emu.post(room, f"message {i}")["id"] for i in range(n)]


async def page_through(session: aiohttp.ClientSession, emu: RoomlioEmulator, room: str,
                       limit: int) -> list[str]:
    seen: list[str] = []
    reply = await call(session, emu, roomID=room, limit=limit)
    while True:
        seen += reply.ids
        if not reply.json["hasMore"]:
            return seen
        reply = await call(session, emu, roomID=room, limit=limit,
                           startCursor=reply.json["nextCursor"])


# -- paging --------------------------------------------------------------------------------

@pytest.mark.parametrize("cursor_mode", ["inclusive", "exclusive"])
@pytest.mark.parametrize("empty_cursor_at_end", [True, False])
@pytest.mark.parametrize(("count", "limit"), [(10, 3), (9, 3), (1, 5), (0, 5), (250, 100)])
async def test_following_next_cursor_reads_every_message_once(
        session: aiohttp.ClientSession, cursor_mode: Any, empty_cursor_at_end: bool,
        count: int, limit: int) -> None:
    """Following nextCursor while hasMore yields each message once, in order, in every mode."""
    async with RoomlioEmulator(cursor_mode=cursor_mode,
                               empty_cursor_at_end=empty_cursor_at_end) as emu:
        room, ids = fill(emu, count)
        assert await page_through(session, emu, room, limit) == ids


async def test_inclusive_cursor_returns_the_cursor_message_first(
        session: aiohttp.ClientSession) -> None:
    """Under inclusive cursors the page starts with the cursor message; nextCursor is unread."""
    async with RoomlioEmulator(cursor_mode="inclusive") as emu:
        room, ids = fill(emu, 6)
        reply = await call(session, emu, roomID=room, limit=2, startCursor=ids[2])
        assert reply.ids == ids[2:4]
        assert reply.json == {**reply.json, "hasMore": True, "nextCursor": ids[4]}


async def test_exclusive_cursor_starts_after_the_cursor_message(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Under exclusive cursors the page starts after the cursor; nextCursor is the last sent."""
    room, ids = fill(emu, 6)
    reply = await call(session, emu, roomID=room, limit=2, startCursor=ids[2])
    assert reply.ids == ids[3:5]
    assert (reply.json["hasMore"], reply.json["nextCursor"]) == (True, ids[4])


@pytest.mark.parametrize(("empty_cursor_at_end", "cursor_index", "expected"), [
    (True, 3, ""),      # the end: empty cursor
    (False, 3, 5),      # the end: the last message returned
    (False, 5, 5),      # nothing new: the cursor given comes back
])
async def test_next_cursor_at_the_end_follows_the_configured_reading(
        session: aiohttp.ClientSession, empty_cursor_at_end: bool, cursor_index: int,
        expected: str | int) -> None:
    """Once hasMore is false, nextCursor is "" or the last id, as configured."""
    async with RoomlioEmulator(empty_cursor_at_end=empty_cursor_at_end) as emu:
        room, ids = fill(emu, 6)
        reply = await call(session, emu, roomID=room, startCursor=ids[cursor_index])
        assert reply.json["hasMore"] is False
        assert reply.json["nextCursor"] == (ids[expected] if isinstance(expected, int) else "")


async def test_room_key_reaches_the_same_room_as_its_id(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """roomKey is an alias of roomID, for requests and for post()."""
    room = emu.add_room(key="support-eu")
    emu.post("support-eu", "hello")
    by_key = await call(session, emu, roomKey="support-eu")
    by_id = await call(session, emu, roomID=room)
    assert by_key.json == by_id.json
    assert by_key.json["messages"][0]["roomID"] == room


async def test_since_returns_messages_created_at_or_after_it(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """since selects by createdAt, inclusive, oldest first, and pages on with the cursor."""
    room = emu.add_room()
    ids = [emu.post(room, str(i), created_at=T0 + timedelta(minutes=i))["id"] for i in range(5)]
    reply = await call(session, emu, roomID=room, since="2024-05-01T12:02:00Z", limit=2)
    assert reply.ids == ids[2:4]
    rest = await call(session, emu, roomID=room, startCursor=reply.json["nextCursor"])
    assert rest.ids == ids[4:]
    offset = await call(session, emu, roomID=room, since="2024-05-01T14:03:30+02:00")
    assert offset.ids == ids[4:]


async def test_since_on_a_backdated_room_still_filters_by_created_at(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Posting with an older createdAt keeps creation order, and since still filters correctly."""
    room = emu.add_room()
    new = emu.post(room, "new", created_at=T0 + timedelta(hours=1))["id"]
    emu.post(room, "old", created_at=T0)
    reply = await call(session, emu, roomID=room, since=(T0 + timedelta(minutes=30)).isoformat())
    assert reply.ids == [new]


async def test_limit_defaults_to_100_and_is_clamped_to_max_limit(
        session: aiohttp.ClientSession) -> None:
    """No limit means 100; a limit above max_limit is clamped rather than refused."""
    async with RoomlioEmulator(max_limit=150) as emu:
        room, _ = fill(emu, 200)
        assert len((await call(session, emu, roomID=room)).ids) == 100
        assert len((await call(session, emu, roomID=room, limit=5000)).ids) == 150


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_missing_or_wrong_api_key_is_401_unauthenticated(
        emu: RoomlioEmulator, session: aiohttp.ClientSession, key: str | None) -> None:
    """Without the right bearer key the answer is 401 with code unauthenticated."""
    room = emu.add_room()
    reply = await call(session, emu, key=key, roomID=room)
    assert reply.status == 401
    assert reply.json["code"] == "unauthenticated"
    assert emu.requests[-1].status == 401


async def test_deleted_room_is_404_not_found(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """A deleted (or never created) room answers 404 not_found, by id and by key."""
    room, _ = fill(emu, 2, emu.add_room(key="gone"))
    emu.delete_room(room)
    for params in ({"roomID": room}, {"roomKey": "gone"}, {"roomID": "rm_nope"}):
        reply = await call(session, emu, **params)
        assert (reply.status, reply.json["code"]) == (404, "not_found")
    with pytest.raises(KeyError):
        emu.messages(room)


async def test_unknown_cursor_is_400_invalid_cursor(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """A startCursor that is not a message of the room answers 400 invalid_cursor."""
    room, _ = fill(emu, 2)
    _, other_ids = fill(emu, 1)
    for cursor in ("msg_00000000000000000000", other_ids[0]):
        reply = await call(session, emu, roomID=room, startCursor=cursor)
        assert (reply.status, reply.json["code"]) == (400, "invalid_cursor")


@pytest.mark.parametrize(("raw", "params"), [
    (b"{not json", {}),
    (b"[1, 2]", {}),
    (None, {}),
    (None, {"roomID": "ROOM", "roomKey": "k"}),
    (None, {"roomID": "ROOM", "limit": 0}),
    (None, {"roomID": "ROOM", "limit": "10"}),
    (None, {"roomID": "ROOM", "since": "yesterday"}),
    (None, {"roomID": "ROOM", "since": "2024-01-01T00:00:00Z", "startCursor": "CURSOR"}),
    (None, {"roomID": 12}),
])
async def test_malformed_requests_are_400(emu: RoomlioEmulator, session: aiohttp.ClientSession,
                                          raw: bytes | None, params: dict[str, Any]) -> None:
    """Bad JSON, a missing or doubled room, a bad limit or since answer 400 with a code."""
    room, ids = fill(emu, 1)
    params = {k: room if v == "ROOM" else ids[0] if v == "CURSOR" else v
              for k, v in params.items()}
    reply = await call(session, emu, raw=raw, **params)
    assert reply.status == 400
    assert reply.json["code"] in ("malformed", "invalid_argument")
    assert reply.json["message"]


async def test_unknown_rpc_method_is_404(emu: RoomlioEmulator,
                                         session: aiohttp.ClientSession) -> None:
    """Methods other than RoomHistory answer 404 bad_route."""
    async with session.post(f"{emu.url}/RoomList", json={}) as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "bad_route"


# -- messages ---------------------------------------------------------------------------------

async def test_messages_have_the_full_roomlio_shape(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """A message carries every documented field, formatted as Roomlio formats it."""
    room = emu.add_room(key="shop", name="Shop support")
    emu.post(room, "see attached", username="alice", first="Alice", last="M",
             links=["https://img.example.com/a.png"], message_type="offline")
    [message] = (await call(session, emu, roomID=room)).json["messages"]
    assert set(message) == {"id", "userID", "visibility", "username", "first", "last",
                            "roomName", "userType", "body", "messageType", "links", "roomID",
                            "createdAt", "editedAt"}
    assert ID_RE.match(message["id"])
    assert message["userID"].startswith("usr_")
    assert TIME_RE.match(message["createdAt"])
    assert message["editedAt"] == "0001-01-01T00:00:00Z"
    assert (message["roomName"], message["messageType"], message["userType"]) == (
        "Shop support", "offline", "member")
    [link] = message["links"]
    assert link["id"].startswith("lnk_") and link["type"] == "image"


def test_message_ids_increase_in_creation_order() -> None:
    """Ids sort as text in creation order, even when createdAt goes backwards."""
    emu = RoomlioEmulator()
    room = emu.add_room()
    moments = [T0, T0, T0 - timedelta(days=1), T0 + timedelta(days=1), T0]
    ids = [emu.post(room, "x", created_at=m)["id"] for m in moments]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(ID_RE.match(i) for i in ids)
    assert new_id("rm_", 0) < new_id("rm_", 0)


def test_same_username_posts_as_the_same_user() -> None:
    """post() gives one userID per username unless user_id is given."""
    emu = RoomlioEmulator()
    room = emu.add_room()
    a1, a2 = (emu.post(room, "x", username="alice") for _ in range(2))
    bob = emu.post(room, "x", username="bob", user_id="usr_bob")
    assert a1["userID"] == a2["userID"] != bob["userID"] == "usr_bob"


async def test_edit_changes_body_and_edited_at_but_not_position(
        session: aiohttp.ClientSession) -> None:
    """An edit rewrites body and editedAt in place; a frozen clock still gives a new editedAt."""
    async with RoomlioEmulator(clock=lambda: T0) as emu:
        room, ids = fill(emu, 3)
        first = emu.edit(ids[1], "now with refund")
        second = emu.edit(ids[1], "refund, really")
        assert first["editedAt"] == "2024-05-01T12:00:00Z"
        assert second["editedAt"] == "2024-05-01T12:00:01Z"
        reply = await call(session, emu, roomID=room)
        assert reply.ids == ids
        assert reply.json["messages"][1] == second
        assert reply.json["messages"][1]["createdAt"] == "2024-05-01T12:00:00Z"


async def test_a_page_served_again_after_an_edit_carries_the_new_version(
        session: aiohttp.ClientSession) -> None:
    """A page is written byte for byte as the JSON of its answer (compact, non-ASCII and
    lone surrogates escaped), and a message edited after it was served is sent as edited."""
    async with RoomlioEmulator(clock=lambda: T0) as emu:
        room, ids = fill(emu, 3)
        emu.post(room, "caf\u00e9 \ud800 \"quoted\"\n")
        ids.append(emu.messages(room)[-1]["id"])
        first = await call(session, emu, roomID=room, limit=2)
        assert first.raw == json.dumps({"messages": emu.messages(room)[:2], "hasMore": True,
                                        "nextCursor": ids[1]}, separators=(",", ":")).encode()
        emu.edit(ids[1], "now with refund")
        again = await call(session, emu, roomID=room)
        assert again.raw == json.dumps({"messages": emu.messages(room), "hasMore": False,
                                        "nextCursor": ""}, separators=(",", ":")).encode()
        assert again.json["messages"][1]["body"] == "now with refund"


def test_explicit_edit_times_never_repeat() -> None:
    """Reusing an explicit edited_at bumps it, so each version has its own editedAt."""
    emu = RoomlioEmulator()
    _, [message_id] = fill(emu, 1)
    stamps = {emu.edit(message_id, str(i), edited_at=T0)["editedAt"] for i in range(3)}
    assert len(stamps) == 3


def test_messages_returns_copies() -> None:
    """Mutating what messages() or post() return does not change the room."""
    emu = RoomlioEmulator()
    room = emu.add_room()
    emu.post(room, "original", links=["https://x/y.png"])["body"] = "changed"
    copy = emu.messages(room)[0]
    copy["links"][0]["url"] = "changed"
    assert emu.messages(room)[0]["body"] == "original"
    assert emu.messages(room)[0]["links"][0]["url"] == "https://x/y.png"


def test_invalid_post_arguments_are_refused() -> None:
    """Unknown rooms, user types and message types raise at once."""
    emu = RoomlioEmulator()
    room = emu.add_room(key="k")
    with pytest.raises(KeyError):
        emu.post("nope", "x")
    with pytest.raises(ValueError, match="user_type"):
        emu.post(room, "x", user_type="robot")
    with pytest.raises(ValueError, match="message_type"):
        emu.post(room, "x", message_type="sms")
    with pytest.raises(ValueError, match="already"):
        emu.add_room(key="k")
    with pytest.raises(RuntimeError, match="async with"):
        _ = emu.url


# -- request log ------------------------------------------------------------------------------

async def test_requests_record_room_params_status_and_instance(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Every RoomHistory request is logged with its room, body, status and instance header."""
    room = emu.add_room()
    sent = time.monotonic()
    async with session.post(f"{emu.url}/RoomHistory", json={"roomID": room, "limit": 7},
                            headers={"Authorization": "Bearer test-key",
                                     "x-notifier-instance": "worker-2"}) as resp:
        assert resp.status == 200
    answered = time.monotonic()
    [record] = emu.requests
    assert (record.room, record.params, record.status, record.instance, record.done) == (
        room, {"roomID": room, "limit": 7}, 200, "worker-2", True)
    assert sent <= record.time <= answered, "not the monotonic time the request arrived"


async def test_wait_for_times_out_with_a_description(emu: RoomlioEmulator) -> None:
    """wait_for raises TimeoutError that says how many requests arrived."""
    with pytest.raises(TimeoutError, match="0 RoomHistory requests"):
        await emu.wait_for(lambda e: len(e.requests) > 0, timeout=0.05)


async def test_latency_delays_every_answer(emu: RoomlioEmulator,
                                           session: aiohttp.ClientSession) -> None:
    """set_latency holds each answer back by at least that long."""
    room = emu.add_room()
    emu.set_latency(0.05)
    started = time.monotonic()
    assert (await call(session, emu, roomID=room)).status == 200
    assert time.monotonic() - started >= 0.05


# -- chatter ----------------------------------------------------------------------------------

async def test_chatter_posts_varied_support_traffic_until_stopped() -> None:
    """simulate_chatter writes refunds, urgent asks, system notices and edits, then stops."""

    class Counting(RoomlioEmulator):
        def post(self, room: str, body: str, **kwargs: Any) -> dict[str, Any]:
            message = super().post(room, body, **kwargs)
            if sum(len(self.messages(r)) for r in rooms) >= 300:
                stop.set()
            return message

    stop = asyncio.Event()
    emu = Counting()
    rooms = [emu.add_room(key="a"), emu.add_room(key="b")]
    actions = await simulate_chatter(emu, rooms, rate=5000, rng=random.Random(7), stop=stop)
    messages = [m for r in rooms for m in emu.messages(r)]
    assert actions >= len(messages) >= 300
    bodies = " ".join(m["body"] for m in messages).lower()
    assert "refund" in bodies and "urgent" in bodies and "cancel" in bodies
    assert {m["messageType"] for m in messages} == {"user", "system", "offline"}
    assert {m["userType"] for m in messages} >= {"admin", "member"}
    assert any(m["links"] for m in messages)
    assert any(m["editedAt"] != "0001-01-01T00:00:00Z" for m in messages)


async def test_chatter_refuses_a_rate_of_zero() -> None:
    """A non-positive rate is a mistake, reported before anything is posted."""
    emu = RoomlioEmulator()
    with pytest.raises(ValueError, match="rate"):
        await simulate_chatter(emu, [emu.add_room()], rate=0, rng=random.Random(1),
                               stop=asyncio.Event())


# -- faults -----------------------------------------------------------------------------------

async def test_status_fault_answers_its_code_and_retry_after_once(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Fault.status answers the code with Retry-After, then the next request is normal."""
    room, _ = fill(emu, 1)
    emu.inject(Fault.status(429, retry_after=2))
    emu.inject(Fault.status(503))
    limited = await call(session, emu, roomID=room)
    assert (limited.status, limited.headers["Retry-After"]) == (429, "2")
    assert limited.json["code"] == "resource_exhausted"
    unavailable = await call(session, emu, roomID=room)
    assert unavailable.status == 503 and "Retry-After" not in unavailable.headers
    assert (await call(session, emu, roomID=room)).status == 200
    assert [r.fault for r in emu.requests] == ["status", "status", None]
    assert [r.status for r in emu.requests] == [429, 503, 200]


async def test_status_fault_can_carry_a_raw_body(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """A str body is sent verbatim, like a proxy's HTML error page."""
    room = emu.add_room()
    emu.inject(Fault.status(502, body="<html>Bad Gateway</html>"))
    reply = await call(session, emu, roomID=room)
    assert (reply.status, reply.raw) == (502, b"<html>Bad Gateway</html>")


async def test_faults_target_one_room_and_repeat_times(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """A fault injected for a room (by key) spares other rooms and lasts `times` requests."""
    hit = emu.add_room(key="hit")
    spared = emu.add_room()
    emu.inject(Fault.status(500), room="hit", times=2)
    assert emu.pending_faults == 2
    assert (await call(session, emu, roomID=spared)).status == 200
    assert (await call(session, emu, roomID=hit)).status == 500
    assert (await call(session, emu, roomKey="hit")).status == 500
    assert (await call(session, emu, roomID=hit)).status == 200
    emu.inject(Fault.status(500), times=5)
    emu.clear_faults()
    assert (await call(session, emu, roomID=hit)).status == 200


async def test_delay_fault_pushes_the_client_past_its_timeout(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Fault.delay makes a client with a shorter timeout give up; the emulator notices."""
    room = emu.add_room()
    emu.inject(Fault.delay(30))
    with pytest.raises(TimeoutError):
        await call(session, emu, roomID=room, client_timeout=0.2)
    await emu.wait_requests(1)
    assert (emu.requests[0].fault, emu.requests[0].status) == ("delay", None)


async def test_short_delay_fault_still_answers_normally(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """A delay shorter than the client's timeout only slows the answer down."""
    room, ids = fill(emu, 2)
    emu.inject(Fault.delay(0.05))
    started = time.monotonic()
    reply = await call(session, emu, roomID=room)
    assert (reply.status, reply.ids) == (200, ids)
    assert time.monotonic() - started >= 0.05


async def test_reset_fault_closes_the_connection_without_an_answer(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Fault.RESET drops the connection: aiohttp raises a connection error."""
    room = emu.add_room()
    emu.inject(Fault.RESET)
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, emu, roomID=room)
    assert emu.requests[0].status is None
    assert (await call(session, emu, roomID=room)).status == 200


async def test_truncated_fault_sends_json_cut_in_the_middle(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """Fault.TRUNCATED is a complete 200 response whose JSON does not parse."""
    room, _ = fill(emu, 3)
    emu.inject(Fault.TRUNCATED)
    reply = await call(session, emu, roomID=room)
    assert reply.status == 200
    assert reply.raw.startswith(b'{"messages":[')
    with pytest.raises(json.JSONDecodeError):
        _ = reply.json


async def test_truncated_fault_can_cut_the_connection_mid_body(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """With cut_connection the body stops short of Content-Length: ClientPayloadError."""
    room, _ = fill(emu, 3)
    emu.inject(Fault.truncated(cut_connection=True))
    with pytest.raises(aiohttp.ClientPayloadError):
        await call(session, emu, roomID=room)
    assert emu.requests[0].status == 200


@pytest.mark.parametrize("messages", [0, 2])
@pytest.mark.parametrize(("variant", "broken"), [
    ("missing_id", lambda a: "id" not in a["messages"][0]),
    ("wrong_type", lambda a: isinstance(a["messages"][0]["createdAt"], int)),
    ("messages_not_list", lambda a: isinstance(a["messages"], dict)),
    ("not_object", lambda a: isinstance(a, list)),
])
async def test_malformed_fault_breaks_the_page_schema(
        emu: RoomlioEmulator, session: aiohttp.ClientSession, messages: int, variant: str,
        broken: Any) -> None:
    """Each Fault.malformed variant sends parseable JSON that breaks the documented schema."""
    room, _ = fill(emu, messages)
    emu.inject(Fault.malformed(variant))
    reply = await call(session, emu, roomID=room)
    assert reply.status == 200
    assert broken(reply.json)
    assert all("id" in m for m in emu.messages(room))


async def test_has_more_empty_cursor_fault_claims_more_without_a_cursor(
        emu: RoomlioEmulator, session: aiohttp.ClientSession) -> None:
    """The page is real but says hasMore with an empty nextCursor."""
    room, ids = fill(emu, 2)
    emu.inject(Fault.HAS_MORE_EMPTY_CURSOR)
    reply = await call(session, emu, roomID=room)
    assert (reply.ids, reply.json["hasMore"], reply.json["nextCursor"]) == (ids, True, "")


@pytest.mark.parametrize(("fault", "expected"), [
    (Fault.DUPLICATE, lambda ids: [i for i in ids for _ in range(2)]),
    (Fault.duplicate(shuffle=True), lambda ids: [i for i in ids[::-1] for _ in range(2)]),
    (Fault.REORDER, lambda ids: ids[::-1]),
])
async def test_duplicate_and_reorder_faults_spoil_the_page_order(
        emu: RoomlioEmulator, session: aiohttp.ClientSession, fault: Fault,
        expected: Any) -> None:
    """The page repeats its messages and/or sends them out of order; the cursor stays right."""
    room, ids = fill(emu, 5)
    emu.inject(fault)
    reply = await call(session, emu, roomID=room, limit=3)
    assert reply.ids == expected(ids[:3])
    assert reply.json["nextCursor"] == ids[2]


@pytest.mark.parametrize("count", [1, 2])
async def test_overlap_fault_resends_messages_before_the_cursor(
        emu: RoomlioEmulator, session: aiohttp.ClientSession, count: int) -> None:
    """Fault.overlap starts the page `count` messages early."""
    room, ids = fill(emu, 6)
    emu.inject(Fault.overlap(count))
    reply = await call(session, emu, roomID=room, limit=2, startCursor=ids[2])
    assert reply.ids == ids[3 - count:5]
    assert reply.json["nextCursor"] == ids[4]


@pytest.mark.parametrize("chunked", [False, True])
async def test_huge_fault_sends_more_bytes_than_asked(
        emu: RoomlioEmulator, session: aiohttp.ClientSession, chunked: bool) -> None:
    """Fault.huge is a valid answer bigger than its size, with or without Content-Length."""
    room, ids = fill(emu, 1)
    emu.inject(Fault.huge(300_000, chunked=chunked))
    reply = await call(session, emu, roomID=room)
    assert reply.status == 200 and len(reply.raw) > 300_000
    assert reply.ids == ids
    assert ("Content-Length" in reply.headers) is not chunked


@pytest.mark.parametrize("build", [
    lambda: Fault.status(99),
    lambda: Fault.delay(-1),
    lambda: Fault.malformed("gibberish"),
    lambda: Fault.overlap(0),
    lambda: Fault.huge(0),
])
def test_fault_constructors_refuse_nonsense(build: Any) -> None:
    """Fault factories validate their arguments."""
    with pytest.raises(ValueError):
        build()


def test_inject_refuses_non_faults_and_zero_times() -> None:
    """inject() takes a Fault and a positive count."""
    emu = RoomlioEmulator()
    with pytest.raises(TypeError):
        emu.inject("reset")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        emu.inject(Fault.RESET, times=0)
