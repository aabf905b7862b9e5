"""The OpenTelemetry SDK behind notifier.util.tracing: imported only when tracing is on.

Spans (attribute names in docs/tracing.md):

* ``room.poll`` / ``room.edit_scan``: one pass over a room; a trace of its own, whose
  children are the ``page.commit`` spans of the pages that added deliveries or
  quarantined messages. A pass that read nothing new, committed nothing of note and did
  not fail leaves no span (an idle room would otherwise make most of the spans).
* ``message.detected``: one message version that matched, ended when its page committed;
  a link points at that ``page.commit``. It roots the version's own trace.
* ``webhook.attempt`` (client): one POST, a child of its version's ``message.detected``,
  so every attempt to every webhook, before and after a restart and in any delivery
  worker process, lands in that one trace. Its context is the request's ``traceparent``.

The detection's trace and span ids are derived from the event id and the deployment's
resource attributes (a hash, ``detection_ids``), not stored:
the attempt made in another process or after a restart rebuilds its parent from the
delivery it holds, so the outbox needs no column for it. The ids are put into the SDK
through its public ``IdGenerator`` seam (``_EventIds``), for that one span only.

Attributes carry names, ids, counts, statuses and error kinds (an exception's class or
an HTTP status), never an error's text, a URL, a header, a secret or a message body.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from notifier.util.tracing import destination

if TYPE_CHECKING:
    from notifier.events import Delivery, Event

__all__ = ["DEPLOYMENT", "DETECTED", "OtelBackend", "detection_ids"]

#: The name of the span each detected message version roots its trace with.
DETECTED = "message.detected"
_ROOT = otel_context.Context()  # no parent: the span starts a trace
_poll: ContextVar[_PollSpan | None] = ContextVar("notifier_poll_span", default=None)


#: The resource attributes that tell deployments apart: the ids derive from them too, so
#: staging and production tailing one room into one backend do not share traces.
DEPLOYMENT = ("service.namespace", "service.name", "deployment.environment.name",
              "deployment.environment")


def detection_ids(event_id: str, deployment: str = "") -> tuple[int, int]:
    """The trace id and span id of ``event_id``'s ``message.detected`` span in
    ``deployment`` (pure)."""
    seed = f"roomlio-notifier trace\x00{deployment}\x00{event_id}"
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:16]) or 1, int.from_bytes(digest[16:24]) or 1


class _EventIds(IdGenerator):
    """Random ids, except for the one span started inside ``forced``."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._forced = threading.local()

    @contextmanager
    def forced(self, trace_id: int, span_id: int) -> Iterator[None]:
        self._forced.ids = (trace_id, span_id)
        try:
            yield
        finally:
            self._forced.ids = None

    def generate_trace_id(self) -> int:
        ids = getattr(self._forced, "ids", None)
        return ids[0] if ids else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._forced, "ids", None)
        return ids[1] if ids else self._random.generate_span_id()


def _failed(span: trace.Span, exc: BaseException | None, status: int | None = None) -> None:
    """Mark ``span`` failed by the kind of ``exc`` (its HTTP status, else its class): its
    text may quote a receiver's answer or a message, so it is not recorded."""
    if exc is None:
        return
    kind = str(status) if status else type(exc).__name__
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


class _PollSpan:
    """``room.poll`` or ``room.edit_scan``, back-dated to its start and begun only when
    there is something to say: a commit of note, messages read for the first time, or a
    failure. An idle room's polls, the bulk of them, cost no span (the metrics count
    them), so they neither crowd the export queue nor bury the polls that found work."""

    __slots__ = ("_fresh", "_messages", "_name", "_room", "_span", "_start", "_token",
                 "_tracer", "pages")

    def __init__(self, tracer: trace.Tracer, room: str, name: str) -> None:
        self._tracer, self._room, self._name = tracer, room, name
        self._start = time.time_ns()
        self._span: trace.Span | None = None
        self._messages = 0
        self._fresh: int | None = None
        self.pages = 0
        """Pages committed during this pass (``_CommitSpan`` counts them)."""

    def __enter__(self) -> _PollSpan:
        self._token = _poll.set(self)
        return self

    def span(self) -> trace.Span:
        """The pass's span, begun now if it was not yet (with the pass's start time)."""
        if self._span is None:
            self._span = self._tracer.start_span(
                self._name, context=_ROOT, attributes={"notifier.room": self._room},
                start_time=self._start)
        return self._span

    def read(self, messages: int, fresh: int | None = None) -> None:
        self._messages, self._fresh = messages, fresh

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _poll.reset(self._token)
        stopped = isinstance(exc, asyncio.CancelledError)  # shutdown: no failure
        if self._span is None and (exc is None or stopped) and not self._fresh:
            return  # nothing new, nothing committed of note, no failure
        span = self.span()
        span.set_attributes({"notifier.pages": self.pages, "notifier.messages": self._messages})
        if self._fresh is not None:
            span.set_attribute("notifier.fresh", self._fresh)
        _failed(span, exc)
        span.end()


class _CommitSpan:
    """``page.commit``, a child of its pass: begun (back-dated) only for a page that added
    deliveries or quarantined messages, or failed; emits a ``message.detected`` per new
    event, linked to it."""

    __slots__ = ("_backend", "_poll", "_room", "_span", "_start")

    def __init__(self, backend: OtelBackend, room: str) -> None:
        self._backend, self._room = backend, room
        self._start = time.time_ns()
        self._span: trace.Span | None = None
        self._poll = _poll.get()
        if self._poll is not None:
            self._poll.pages += 1

    def __enter__(self) -> _CommitSpan:
        return self

    def _begin(self) -> trace.Span:
        parent = _ROOT if self._poll is None else trace.set_span_in_context(self._poll.span())
        self._span = self._backend.tracer.start_span(
            "page.commit", context=parent, attributes={"notifier.room": self._room},
            start_time=self._start)
        return self._span

    def committed(self, added: Sequence[Delivery], quarantined: int) -> None:
        if not added and not quarantined:
            return
        span = self._begin()
        span.set_attributes({"notifier.deliveries": len(added),
                             "notifier.quarantined": quarantined})
        webhooks: dict[str, list[str]] = {}
        events: dict[str, Event] = {}
        for delivery in added:
            events.setdefault(delivery.event.id, delivery.event)
            webhooks.setdefault(delivery.event.id, []).append(delivery.webhook)
        link = Link(span.get_span_context())
        for event_id, event in events.items():
            self._backend.detected(event, webhooks[event_id], link)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._span is None and (exc is None or isinstance(exc, asyncio.CancelledError)):
            return  # nothing of note, or a stop cut it short (no failure)
        span = self._span or self._begin()
        _failed(span, exc)
        span.end()


class _AttemptSpan:
    """``webhook.attempt``: current while the POST runs (its context is the request's
    ``traceparent``); a child of its version's ``message.detected``. A grouped chat
    message (``group_wait``) is its first member's child and links the others'."""

    __slots__ = ("_span", "_token")

    def __init__(self, backend: OtelBackend, delivery: Delivery, number: int) -> None:
        parent = trace.NonRecordingSpan(backend.detection_context(delivery.event.id))
        attributes: dict[str, Any] = {
            "notifier.webhook": delivery.webhook, "notifier.webhook_id": delivery.id,
            "notifier.event.id": delivery.event.id, "notifier.attempt": number,
            "http.request.method": "POST"}
        members: tuple[Delivery, ...] = getattr(delivery, "members", ())  # a GroupDelivery
        if members:
            attributes["notifier.group.event_ids"] = [m.event.id for m in members]
        self._span = backend.tracer.start_span(
            "webhook.attempt", context=trace.set_span_in_context(parent, _ROOT),
            kind=SpanKind.CLIENT, attributes=attributes,
            links=[Link(backend.detection_context(m.event.id)) for m in members
                   if m.event.id != delivery.event.id])

    def __enter__(self) -> _AttemptSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def answered(self, status: int) -> None:
        self._span.set_attribute("http.response.status_code", status)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        otel_context.detach(self._token)
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            self._span.set_attribute("http.response.status_code", status)
        _failed(self._span, exc, status if isinstance(status, int) else None)
        self._span.end()


class OtelBackend:
    """Tracing on: a TracerProvider configured from the OTEL_* environment."""

    def __init__(self, provider: TracerProvider, ids: _EventIds, where: str) -> None:
        self._provider = provider
        self._ids = ids
        self._where = where
        attributes = provider.resource.attributes
        self._deployment = "\x00".join(str(attributes.get(k, "")) for k in DEPLOYMENT)
        self.tracer = provider.get_tracer("notifier")
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, instance: str | None,
                 version: str) -> OtelBackend:
        """The SDK as the standard variables in ``env`` (os.environ, which the SDK reads
        too) configure it: sampler, resource, OTLP endpoint, headers, batching."""
        resource = Resource.create({})
        defaults: dict[str, str] = {"service.version": version}
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            defaults["service.name"] = "roomlio-notifier"
        if instance and "service.instance.id" not in resource.attributes:
            defaults["service.instance.id"] = instance
        ids = _EventIds()
        provider = TracerProvider(resource=resource.merge(Resource(defaults)),
                                  id_generator=ids, shutdown_on_exit=False)
        console = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "console"
        exporter = ConsoleSpanExporter(out=sys.stderr) if console else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, ids, destination(env))

    def describe(self) -> str:
        """Where spans go, as who, sampled how (no header, no credential)."""
        name = self._provider.resource.attributes.get("service.name")
        return (f"spans to {self._where} as service {name!s}, "
                f"sampler {self._provider.sampler.get_description()}")

    def poll(self, room: str, name: str) -> _PollSpan:
        return _PollSpan(self.tracer, room, name)

    def commit(self, room: str) -> _CommitSpan:
        return _CommitSpan(self, room)

    def attempt(self, delivery: Delivery, number: int) -> _AttemptSpan:
        return _AttemptSpan(self, delivery, number)

    def headers(self) -> Mapping[str, str]:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier

    def detection_context(self, event_id: str) -> SpanContext:
        """The context of ``event_id``'s ``message.detected`` span, rebuilt from the id,
        sampled as that span was (the sampler sees the same trace id and name)."""
        trace_id, span_id = detection_ids(event_id, self._deployment)
        result = self._provider.sampler.should_sample(_ROOT, trace_id, DETECTED)
        sampled = result.decision is Decision.RECORD_AND_SAMPLE
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))

    def detected(self, event: Event, webhooks: list[str], link: Link) -> None:
        """Record that ``event`` was detected (from its detection until now)."""
        with self._ids.forced(*detection_ids(event.id, self._deployment)):
            span = self.tracer.start_span(
                DETECTED, context=_ROOT, links=[link],
                start_time=int(event.detected_at * 1e9),
                attributes={"notifier.event.id": event.id, "notifier.event.kind": event.kind,
                            "notifier.room": event.room, "notifier.rules": list(event.rules),
                            "notifier.webhooks": webhooks,
                            "roomlio.message.id": str(event.message.get("id", ""))})
        span.end()

    def shutdown(self) -> None:
        self._provider.shutdown()
