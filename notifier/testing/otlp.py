"""OtlpCollector: receives OTLP/HTTP traces on 127.0.0.1 and decodes them, for tests.

A real aiohttp server answering ``POST /v1/traces`` as an OpenTelemetry collector does:
the body is an ``ExportTraceServiceRequest`` in protobuf (gzip when the exporter
compresses), decoded with ``opentelemetry-proto`` (installed with the ``otel`` extra's
exporter, and by the ``test`` extra), then kept as plain ``Span`` records. Not imported
by ``notifier.testing`` itself, so the emulator and receiver work without the extra.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from notifier.testing._server import Changes, LocalServer

__all__ = ["OtlpCollector", "Span"]


@dataclass(frozen=True, slots=True)
class Span:
    """One span as the collector received it; ids in lowercase hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    """Empty for a root span."""
    kind: int
    """OTLP's SpanKind number (3: client)."""
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]
    """(trace id, span id) of each link."""
    status_code: int
    """OTLP's status code (0 unset, 1 ok, 2 error)."""
    start_ns: int
    end_ns: int
    resource: dict[str, Any] = field(default_factory=dict)


def _value(any_value: Any) -> Any:
    """A protobuf AnyValue as a Python value."""
    which = any_value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return None if which is None else getattr(any_value, which)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def decode(body: bytes) -> list[Span]:
    """The spans of one ExportTraceServiceRequest body."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(Span(
                    s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                    s.kind, _attributes(s.attributes),
                    tuple((link.trace_id.hex(), link.span_id.hex()) for link in s.links),
                    s.status.code, s.start_time_unix_nano, s.end_time_unix_nano, resource))
    return spans


class OtlpCollector:
    """An OTLP/HTTP trace endpoint; ``async with OtlpCollector() as c: c.endpoint``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.spans: list[Span] = []
        self.requests: list[dict[str, str]] = []
        """The headers of every export request (names lowercased)."""
        self._changes = Changes()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._export)
        self._server = LocalServer(app, host=host, port=port)
        self._url: str | None = None

    async def __aenter__(self) -> OtlpCollector:
        self._url = await self._server.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._server.stop()

    @property
    def endpoint(self) -> str:
        """The base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
        if self._url is None:
            raise RuntimeError("the collector is not running: use 'async with'")
        return self._url

    def named(self, name: str) -> list[Span]:
        """The spans received with ``name``, in the order they arrived."""
        return [s for s in self.spans if s.name == name]

    async def wait_for(self, predicate: Callable[[OtlpCollector], bool],
                       timeout: float = 10) -> None:
        """Wait until ``predicate(self)`` holds, re-checked after every export."""
        await self._changes.wait_for(lambda: predicate(self), timeout,
                                     lambda: f"{len(self.spans)} span(s) received: "
                                             f"{sorted({s.name for s in self.spans})}")

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415, text="OTLP/HTTP protobuf only")
        self.requests.append({k.lower(): v for k, v in request.headers.items()})
        self.spans.extend(decode(body))
        self._changes.notify()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
