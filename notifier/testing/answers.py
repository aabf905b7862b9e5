"""How the emulator writes a RoomHistory answer: faithfully, or spoiled by a fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from notifier.testing.faults import Fault
from notifier.testing.rooms import Page, Room

__all__ = ["ERROR_CODES", "error_response", "page_bytes", "page_response",
           "status_fault_response", "to_json"]

#: The ``code`` in an error body, by HTTP status (twirp-style, as Roomlio's RPC uses).
ERROR_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    408: "deadline_exceeded",
    409: "already_exists",
    429: "resource_exhausted",
    500: "internal",
    501: "unimplemented",
    502: "unavailable",
    503: "unavailable",
    504: "deadline_exceeded",
}
_CHUNK = 64 * 1024


def to_json(value: Any) -> bytes:
    """``value`` as compact JSON, as the emulator writes every answer."""
    return json.dumps(value, separators=(",", ":")).encode()


def error_response(status: int, code: str, message: str) -> web.Response:
    """A Roomlio error answer: ``{"code": ..., "message": ...}``."""
    return web.Response(status=status, body=to_json({"code": code, "message": message}),
                        content_type="application/json")


def status_fault_response(fault: Fault) -> web.Response:
    """The answer for ``Fault.status``: its status, Retry-After and body."""
    assert fault.code is not None
    retry = fault.retry_after_header()
    headers = {} if retry is None else {"Retry-After": retry}
    body = fault.body
    if body is None:
        body = {"code": ERROR_CODES.get(fault.code, "unknown"),
                "message": f"injected fault: HTTP {fault.code}"}
    if isinstance(body, str | bytes):
        raw = body.encode() if isinstance(body, str) else body
        return web.Response(status=fault.code, body=raw, headers=headers,
                            content_type="text/plain")
    return web.Response(status=fault.code, body=to_json(body), headers=headers,
                        content_type="application/json")


def page_bytes(page: Page, encoded: Callable[[dict[str, Any]], bytes]) -> bytes:
    """``page.answer()`` as JSON, the same bytes, joined from each message's ``encoded``
    form (the emulator keeps them, so a page served again is not encoded again)."""
    return b"".join((b'{"messages":[', b",".join(map(encoded, page.messages)),
                     b'],"hasMore":', b"true" if page.has_more else b"false",
                     b',"nextCursor":', to_json(page.next_cursor), b"}"))


async def page_response(request: web.Request, room: Room, page: Page, fault: Fault | None,
                        encoded: Callable[[dict[str, Any]], bytes] = to_json
                        ) -> web.StreamResponse:
    """The 200 answer for ``page``, spoiled as ``fault`` says (None: faithful); each
    message of a faithful page is written by ``encoded``."""
    if fault is None:
        return web.Response(body=page_bytes(page, encoded), content_type="application/json")
    data = to_json(_spoiled_answer(room, page, fault))
    if fault.kind not in ("truncated", "huge"):
        return web.Response(body=data, content_type="application/json")
    if fault.kind == "truncated" and fault.variant == "body":
        return web.Response(body=data[: max(1, len(data) // 2)], content_type="application/json")
    response = web.StreamResponse()
    response.content_type = "application/json"
    if fault.kind == "truncated":
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.abort()
        return response
    if fault.chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = len(data)
    await response.prepare(request)
    for start in range(0, len(data), _CHUNK):
        await response.write(data[start:start + _CHUNK])
    await response.write_eof()
    return response


def _spoiled_answer(room: Room, page: Page, fault: Fault) -> Any:
    answer = page.answer()
    messages: list[dict[str, Any]] = answer["messages"]
    if fault.kind == "malformed":
        return _malformed(answer, room, fault.variant)
    if fault.kind == "has_more_empty_cursor":
        answer.update(hasMore=True, nextCursor="")
    elif fault.kind == "duplicate":
        doubled = [m for m in messages for _ in range(2)]
        answer["messages"] = doubled[::-1] if fault.shuffle else doubled
    elif fault.kind == "reorder":
        answer["messages"] = messages[::-1]
    elif fault.kind == "overlap" and page.start > 0:
        earlier = room.messages[max(0, page.start - fault.count):page.start]
        answer["messages"] = earlier + messages
    elif fault.kind == "huge":
        answer["padding"] = "x" * fault.size
    return answer


def _malformed(answer: dict[str, Any], room: Room, variant: str) -> Any:
    if variant == "not_object":
        return [answer]
    messages = answer["messages"]
    if variant == "messages_not_list":
        answer["messages"] = {str(i): m for i, m in enumerate(messages)}
        return answer
    # A broken copy of the first message goes in front of the page, whose real messages
    # stay: a defective message is quarantined while the rest of its page is processed,
    # so breaking a real one would lose it (an empty page gets a broken placeholder).
    victim = dict(messages[0]) if messages else _placeholder(room)
    victim.pop("id", None)
    if variant == "wrong_type":
        victim["createdAt"] = 1609960385
    answer["messages"] = [victim, *messages]
    return answer


def _placeholder(room: Room) -> dict[str, Any]:
    return {"userID": "usr_00000000000000000000", "visibility": "", "username": "",
            "first": "", "last": "", "roomName": room.name, "userType": "member",
            "body": "", "messageType": "user", "links": [], "roomID": room.id,
            "createdAt": "2021-01-06T19:13:05Z", "editedAt": "0001-01-01T00:00:00Z"}
