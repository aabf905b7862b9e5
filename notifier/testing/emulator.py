"""RoomlioEmulator: a real aiohttp server speaking Roomlio's RoomHistory on 127.0.0.1.

Tests, ``notifier demo``, the chaos tests and the benchmarks talk to it over real HTTP::

    async with RoomlioEmulator(cursor_mode="inclusive") as emu:
        room = emu.add_room(key="support")
        emu.post(room, "I want a refund for order #1234")
        emu.inject(Fault.status(429, retry_after=1))
        emu.limit_rate(KeyLimit(50))  # 50 requests/s per API key, then 429 Retry-After: 1
        ...  # point the client at emu.url with api key "test-key"

Both readings of the open questions in Roomlio's API are selectable (``cursor_mode``,
``empty_cursor_at_end``), faults can be queued for the next requests, and a per-key rate
limit (``rate_limit``, notifier.testing.keylimit) refuses what goes beyond it, as Roomlio's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from notifier.events import NEVER_EDITED, is_edited
from notifier.testing._server import Changes, LocalServer
from notifier.testing.answers import (
    error_response,
    page_response,
    status_fault_response,
    to_json,
)
from notifier.testing.faults import Fault, FaultQueue
from notifier.testing.ids import new_id
from notifier.testing.keylimit import KeyLimit, KeyLimiter
from notifier.testing.rooms import CursorError, Page, Room, format_time, parse_time
from notifier.util.aio import sleep_unless

__all__ = ["INSTANCE_HEADER", "MESSAGE_TYPES", "USER_TYPES", "RequestRecord", "RoomlioEmulator"]

INSTANCE_HEADER = "x-notifier-instance"
USER_TYPES = ("admin", "member", "embed", "embed_insecure")
MESSAGE_TYPES = ("user", "offline", "system")
DEFAULT_LIMIT = 100
_ONE_SECOND = timedelta(seconds=1)


@dataclass(slots=True)
class RequestRecord:
    """One RoomHistory request as the emulator saw it."""

    time: float
    """``time.monotonic()`` when it arrived."""
    room: str | None = None
    """The ``roomID`` or ``roomKey`` asked for (None if absent or unreadable)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The JSON body ({} when it was not a JSON object)."""
    status: int | None = None
    """The status answered; None while in flight, after a reset, or if the client left."""
    instance: str | None = None
    """The ``x-notifier-instance`` header, if sent."""
    fault: str | None = None
    """The kind of the injected fault that this request consumed, if any."""
    done: bool = False
    """Whether the emulator is finished with it (answered, reset, or the client left)."""


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RoomlioEmulator:
    """An in-process Roomlio API server with rooms, messages, edits and fault injection."""

    def __init__(self, *, api_key: str = "test-key",
                 cursor_mode: Literal["inclusive", "exclusive"] = "exclusive",
                 empty_cursor_at_end: bool = True, max_limit: int = 1000,
                 clock: Callable[[], datetime] | None = None,
                 rate_limit: KeyLimit | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if cursor_mode not in ("inclusive", "exclusive"):
            raise ValueError(f"cursor_mode must be 'inclusive' or 'exclusive', not {cursor_mode!r}")
        if max_limit < 1:
            raise ValueError(f"max_limit must be >= 1, not {max_limit}")
        self.api_key = api_key
        self.cursor_mode = cursor_mode
        self.empty_cursor_at_end = empty_cursor_at_end
        self.max_limit = max_limit
        self._clock = clock or (lambda: datetime.now(UTC))
        self.requests: list[RequestRecord] = []
        self._rooms: dict[str, Room] = {}
        self._keys: dict[str, str] = {}
        self._owner: dict[str, Room] = {}
        self._users: dict[str, str] = {}
        self._edit_history: dict[str, set[str]] = {}
        self._encoded: dict[str, bytes] = {}
        """Each message served so far, as JSON (dropped when it is edited or its room
        deleted): a page served is joined from these, not encoded anew. The benchmarks run
        the emulator on the cores the notifier runs on, so its cost is theirs."""
        self._faults = FaultQueue()
        self._limiter = KeyLimiter(rate_limit)
        self._latency = 0.0
        self._changes = Changes()
        app = web.Application()
        app.router.add_post("/rpc/RoomHistory", self._room_history)
        app.router.add_route("*", "/rpc/{method}", self._unknown_method)
        self._server = LocalServer(app, host=host, port=port)
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> RoomlioEmulator:
        self._url = await self._server.start() + "/rpc"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._server.stop()
        self._url = None

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT/rpc``); RoomHistory is ``{url}/RoomHistory``."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: use 'async with RoomlioEmulator()'")
        return self._url

    # -- the world: rooms and messages ---------------------------------------------------

    def add_room(self, room_id: str | None = None, key: str | None = None, *,
                 name: str = "") -> str:
        """Create a room and return its id; ``key`` is its optional ``roomKey`` alias."""
        room_id = room_id or new_id("rm_")
        if room_id in self._rooms:
            raise ValueError(f"room {room_id!r} already exists")
        if key is not None and key in self._keys:
            raise ValueError(f"room key {key!r} is already used by {self._keys[key]!r}")
        self._rooms[room_id] = Room(room_id, key, name or key or "")
        if key is not None:
            self._keys[key] = room_id
        return room_id

    def delete_room(self, room: str) -> None:
        """Remove a room (by id or key); later requests for it get 404."""
        found = self._room(room)
        del self._rooms[found.id]
        if found.key is not None:
            del self._keys[found.key]
        for message_id in found.index:
            self._owner.pop(message_id, None)
            self._edit_history.pop(message_id, None)
            self._encoded.pop(message_id, None)

    def post(self, room: str, body: str, *, user_type: str = "member",
             message_type: str = "user", user_id: str | None = None, username: str = "",
             first: str = "", last: str = "", links: Iterable[str | Mapping[str, str]] = (),
             created_at: datetime | None = None) -> dict[str, Any]:
        """Append a message to ``room`` (id or key) and return a copy of it."""
        found = self._room(room)
        _check_choice("user_type", user_type, USER_TYPES)
        _check_choice("message_type", message_type, MESSAGE_TYPES)
        created = _whole_seconds(created_at or self._clock())
        message_id = new_id("msg_", created.timestamp())
        message: dict[str, Any] = {
            "id": message_id,
            "userID": user_id or self._user_id(username),
            "visibility": "",
            "username": username,
            "first": first,
            "last": last,
            "roomName": found.name,
            "userType": user_type,
            "body": body,
            "messageType": message_type,
            "links": [_link(link) for link in links],
            "roomID": found.id,
            "createdAt": format_time(created),
            "editedAt": NEVER_EDITED,
        }
        found.append(message, created)
        self._owner[message_id] = found
        return _copy(message)

    def edit(self, message_id: str, body: str, *,
             edited_at: datetime | None = None) -> dict[str, Any]:
        """Change a message's body and ``editedAt``; return a copy of the new version.

        ``editedAt`` never repeats for one message: when the clock has not moved on (or an
        explicit ``edited_at`` was used before) it is bumped by whole seconds.
        """
        room = self._owner.get(message_id)
        if room is None:
            raise KeyError(f"no message {message_id!r} in any room")
        message = room.messages[room.index[message_id]]
        moment = _whole_seconds(edited_at or self._clock())
        if edited_at is None and is_edited(message):
            moment = max(moment, parse_time(message["editedAt"]) + _ONE_SECOND)
        history = self._edit_history.setdefault(message_id, set())
        while format_time(moment) in history:
            moment += _ONE_SECOND
        stamp = format_time(moment)
        history.add(stamp)
        message["body"] = body
        message["editedAt"] = stamp
        self._encoded.pop(message_id, None)
        return _copy(message)

    def messages(self, room: str) -> list[dict[str, Any]]:
        """Copies of the room's messages (current versions), oldest first."""
        return [_copy(m) for m in self._room(room).messages]

    def _room(self, room: str) -> Room:
        found = self._rooms.get(room) or self._rooms.get(self._keys.get(room, ""))
        if found is None:
            raise KeyError(f"no room {room!r} (by id or key)")
        return found

    def _user_id(self, username: str) -> str:
        # The same username always writes as the same user.
        if username not in self._users:
            self._users[username] = new_id("usr_")
        return self._users[username]

    # -- faults, latency, waiting -----------------------------------------------------------

    def inject(self, fault: Fault, *, room: str | None = None, times: int = 1) -> None:
        """Spoil the next ``times`` RoomHistory requests for ``room`` (id or key; None: any)."""
        target = room
        if room is not None and room in self._keys:
            target = self._keys[room]
        self._faults.add(fault, target, times)

    def limit_rate(self, limit: KeyLimit | None) -> None:
        """Refuse (429) each API key's requests beyond ``limit`` (None: no limit); every
        key starts with a full bucket. Injected faults come first and cost no token."""
        self._limiter.set(limit)

    @property
    def refused(self) -> int:
        """RoomHistory requests answered 429 so far (rate limit and injected faults)."""
        return sum(1 for r in self.requests if r.status == 429)

    def clear_faults(self) -> None:
        """Drop every fault not yet consumed."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many fault uses are still queued."""
        return len(self._faults)

    def set_latency(self, seconds: float) -> None:
        """Delay every RoomHistory answer by ``seconds`` (0 turns it off)."""
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, not {seconds}")
        self._latency = seconds

    async def wait_for(self, predicate: Callable[[RoomlioEmulator], bool],
                       timeout: float = 10) -> None:
        """Wait until ``predicate(self)`` holds, re-checked after every request."""
        await self._changes.wait_for(lambda: predicate(self), timeout,
                                     lambda: f"{len(self.requests)} RoomHistory requests; "
                                             f"last: {self.requests[-1:]}")

    async def wait_requests(self, n: int,
                            timeout: float = 10) -> None:
        """Wait until the emulator is done with at least ``n`` RoomHistory requests."""
        await self.wait_for(lambda emu: sum(r.done for r in emu.requests) >= n, timeout)

    # -- HTTP ------------------------------------------------------------------------------

    async def _unknown_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        return error_response(404, "bad_route", f"no method {request.method} /rpc/{method}")

    async def _room_history(self, request: web.Request) -> web.StreamResponse:
        record = RequestRecord(time=time.monotonic(), instance=request.headers.get(INSTANCE_HEADER))
        self.requests.append(record)
        self._changes.notify()
        try:
            response = await self._serve(request, record)
            record.status = response.status if record.fault != "reset" else None
            return response
        finally:
            record.done = True
            self._changes.notify()

    async def _serve(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        if self._latency:
            await sleep_unless(self._server.closing, self._latency)
        params, problem = _decode(await request.read())
        record.params = params
        raw_room = params.get("roomID") or params.get("roomKey")
        record.room = raw_room if isinstance(raw_room, str) else None
        resolved = self._keys.get(record.room or "", record.room)
        fault = self._faults.take(record.room, resolved)
        record.fault = fault.kind if fault is not None else None
        if fault is not None and fault.kind == "status":
            return status_fault_response(fault)
        if fault is not None and fault.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        if fault is not None and fault.kind == "cursor_loop":
            return web.json_response(_looping_page(params.get("startCursor"), fault.variant))
        if fault is not None and fault.kind == "delay":
            await sleep_unless(self._server.closing, fault.seconds)
        refusal = self._over_limit(request)
        if refusal is not None:
            return refusal
        try:
            room, page = self._page_for(request, params, problem)
        except _ApiError as err:
            return error_response(err.status, err.code, err.message)
        if fault is not None and fault.kind == "truncated":
            record.status = 200  # set before the body starts: the connection may drop mid-way
        return await page_response(request, room, page, fault, self._encode)

    def _encode(self, message: dict[str, Any]) -> bytes:
        """The message as JSON: encoded once, until it changes (see ``_encoded``)."""
        found = self._encoded.get(message["id"])
        if found is None:
            found = self._encoded[message["id"]] = to_json(message)
        return found

    def _over_limit(self, request: web.Request) -> web.Response | None:
        """The 429 for a request of the right key beyond the rate limit (else None)."""
        key = request.headers.get("Authorization", "")
        limit = self._limiter.limit
        if limit is None or key != f"Bearer {self.api_key}" or self._limiter.admit(key):
            return None
        refusal = error_response(429, "resource_exhausted", f"rate limit of {limit.rate:g} "
                                 "requests a second for this API key exceeded")
        if limit.retry_after is not None:
            refusal.headers["Retry-After"] = f"{limit.retry_after:g}"
        return refusal

    def _page_for(self, request: web.Request, params: dict[str, Any],
                  problem: str | None) -> tuple[Room, Page]:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise _ApiError(401, "unauthenticated",
                            "missing or wrong API key: send 'Authorization: Bearer <API key>'")
        if problem is not None:
            raise _ApiError(400, "malformed", problem)
        room = self._requested_room(params)
        limit = params.get("limit")
        if limit is None:
            limit = DEFAULT_LIMIT
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _ApiError(400, "invalid_argument", f"limit must be a positive integer, "
                                                     f"not {limit!r}")
        cursor = _optional_text(params, "startCursor")
        since_text = _optional_text(params, "since")
        if cursor is not None and since_text is not None:
            raise _ApiError(400, "invalid_argument", "give startCursor or since, not both")
        since = None
        if since_text is not None:
            try:
                since = parse_time(since_text)
            except ValueError:
                raise _ApiError(400, "invalid_argument",
                                f"since is not an ISO 8601 time: {since_text!r}") from None
        try:
            page = room.page(limit=min(limit, self.max_limit), cursor=cursor, since=since,
                             inclusive=self.cursor_mode == "inclusive",
                             empty_cursor_at_end=self.empty_cursor_at_end)
        except CursorError as err:
            raise _ApiError(400, "invalid_cursor", str(err)) from None
        return room, page

    def _requested_room(self, params: dict[str, Any]) -> Room:
        room_id = _optional_text(params, "roomID")
        room_key = _optional_text(params, "roomKey")
        if (room_id is None) == (room_key is None):
            raise _ApiError(400, "invalid_argument", "give exactly one of roomID and roomKey")
        found = (self._rooms.get(room_id) if room_id is not None
                 else self._rooms.get(self._keys.get(room_key or "", "")))
        if found is None:
            raise _ApiError(404, "not_found", f"room {room_id or room_key!r} not found")
        return found


def _decode(raw: bytes) -> tuple[dict[str, Any], str | None]:
    """The request body as a dict, and a problem to answer 400 with (or None)."""
    try:
        params = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError) as err:
        return {}, f"the body is not valid JSON: {err}"
    if not isinstance(params, dict):
        return {}, "the body must be a JSON object"
    return params, None


def _looping_page(given: object, variant: str) -> dict[str, Any]:
    """A ``cursor_loop`` answer: no messages, ``hasMore``, a cursor that gets nowhere."""
    if variant == "fresh":
        cursor = new_id("cur_")
    else:
        cursor = "cur_loop_b" if given == "cur_loop_a" else "cur_loop_a"
    return {"messages": [], "hasMore": True, "nextCursor": cursor}


def _optional_text(params: Mapping[str, Any], name: str) -> str | None:
    """A string parameter; absent, null and "" all mean 'not given' (as in Go)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _ApiError(400, "invalid_argument", f"{name} must be a string, not {value!r}")
    return value


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; not {value!r}")


def _whole_seconds(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _link(link: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(link, str):
        return {"id": new_id("lnk_"), "type": "image", "url": link}
    return {"id": link.get("id") or new_id("lnk_"), "type": link.get("type", "image"),
            "url": link["url"]}


def _copy(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "links": [dict(link) for link in message["links"]]}
