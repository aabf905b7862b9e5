"""OpenTelemetry traces of polls, page commits and delivery attempts: off unless asked for.

The daemon calls the functions below at four places: a room's poll and edit scan
(``poll``), the commit of a page (``commit``), each POST to a webhook (``attempt``) and
the request's headers (``headers``). While tracing is off, each returns one shared object
that does nothing, and nothing of OpenTelemetry is imported: without the ``otel`` extra,
or with ``OTEL_SDK_DISABLED=true``, a delivery pays a few attribute lookups.

``start`` turns tracing on when the standard environment asks for it (``wanted``: an OTLP
endpoint, or ``OTEL_TRACES_EXPORTER=console``) and the extra is installed; the SDK code
is in notifier.util.otel, imported only then. The spans, and how one message version's
path is followed from its detection to its 2xx across retries, restarts and delivery
worker processes, are described there and in docs/tracing.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from notifier.errors import ConfigError, Problem

if TYPE_CHECKING:
    from notifier.events import Delivery

__all__ = ["AttemptSpan", "CommitSpan", "PollSpan", "attempt", "commit", "destination",
           "edit_scan", "headers", "poll", "start", "stop", "wanted"]

log = logging.getLogger("notifier.tracing")

#: The values of OTEL_TRACES_EXPORTER this notifier understands.
EXPORTERS = ("otlp", "console", "none")


class PollSpan(Protocol):
    """A room's poll or edit scan, open while it runs (``with tracing.poll(room) as span``)."""

    def __enter__(self) -> PollSpan: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def read(self, messages: int, fresh: int | None = None) -> None:
        """What the pass read: messages in all, and (a poll) those read for the first
        time."""


class CommitSpan(Protocol):
    """One page's store transaction, open while it runs."""

    def __enter__(self) -> CommitSpan: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def committed(self, added: Sequence[Delivery], quarantined: int) -> None:
        """The page's new deliveries (their events were detected here) and the number of
        messages newly quarantined."""


class AttemptSpan(Protocol):
    """One POST of a delivery, open while it runs; a DeliveryError leaving it is its
    failure (status code and kind, never its text)."""

    def __enter__(self) -> AttemptSpan: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def answered(self, status: int) -> None:
        """The webhook answered 2xx with ``status``."""


class Backend(Protocol):
    """What notifier.util.otel provides while tracing is on."""

    def poll(self, room: str, name: str) -> PollSpan: ...

    def commit(self, room: str) -> CommitSpan: ...

    def attempt(self, delivery: Delivery, number: int) -> AttemptSpan: ...

    def headers(self) -> Mapping[str, str]: ...

    def shutdown(self) -> None: ...


class _Off:
    """Every span while tracing is off: enters, records and exits doing nothing."""

    __slots__ = ()

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def read(self, messages: int, fresh: int | None = None) -> None:
        """Nothing to record."""

    def committed(self, added: Sequence[Delivery], quarantined: int) -> None:
        """Nothing to record."""

    def answered(self, status: int) -> None:
        """Nothing to record."""


_OFF = _Off()
_NO_HEADERS: Mapping[str, str] = {}
_backend: Backend | None = None


def poll(room: str) -> PollSpan:
    """The span of one poll of ``room`` (pages past the cursor)."""
    return _OFF if _backend is None else _backend.poll(room, "room.poll")


def edit_scan(room: str) -> PollSpan:
    """The span of one edit scan of ``room`` (the edit window re-read)."""
    return _OFF if _backend is None else _backend.poll(room, "room.edit_scan")


def commit(room: str) -> CommitSpan:
    """The span of one page's commit (cursor, deliveries, quarantine) for ``room``."""
    return _OFF if _backend is None else _backend.commit(room)


def attempt(delivery: Delivery, number: int) -> AttemptSpan:
    """The span of attempt ``number`` (counted over restarts) to POST ``delivery``."""
    return _OFF if _backend is None else _backend.attempt(delivery, number)


def headers() -> Mapping[str, str]:
    """The W3C ``traceparent`` of the attempt under way, to send with its request; empty
    while tracing is off or outside an attempt."""
    return _NO_HEADERS if _backend is None else _backend.headers()


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables in ``env`` ask for traces; raise ConfigError naming
    the variable when one holds a value this notifier cannot honour."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter not in EXPORTERS:
        raise _bad("OTEL_TRACES_EXPORTER", exporter, "otlp, console or none")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise _bad(name, protocol, "http/protobuf (the otel extra's exporter)")
        if protocol:
            break
    if exporter != "otlp":
        return exporter == "console"
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def destination(env: Mapping[str, str]) -> str:
    """Where the spans go, for the start-up line: the exporter, and the endpoint's
    ``scheme://host:port`` only (no userinfo, path or query: they may hold credentials)."""
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "console":
        return "standard error"
    url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "")
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "OTLP/HTTP (an endpoint that does not parse)"
    return f"OTLP/HTTP {parts.scheme}://{parts.hostname}{port}"


def _bad(name: str, value: str, allowed: str) -> ConfigError:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return ConfigError([Problem("environment", None, name,
                                f"{shown!r} is not supported (use {allowed})")])


def start(*, version: str, instance: str | None = None) -> bool:
    """Turn tracing on if the process's environment asks and the ``otel`` extra is
    installed (the resource names ``version`` and ``instance``); return whether it is on.
    Raise ConfigError for an OTEL_* value this notifier cannot honour. ``stop`` flushes
    and turns it off."""
    global _backend
    env = os.environ
    if _backend is not None or not wanted(env):
        return _backend is not None
    try:
        from notifier.util import otel
    except ImportError as exc:
        log.warning("tracing stays off: the OTEL_* environment asks for traces but "
                    "OpenTelemetry is not installed (%s); pip install "
                    "'roomlio-notifier[otel]'", exc.name or exc)
        return False
    _backend = otel.OtelBackend.from_env(env, instance=instance, version=version)
    log.info("tracing on: %s", _backend.describe())
    return True


def stop() -> None:
    """Export the spans still buffered (bounded by the exporter's timeout) and turn
    tracing off; nothing when it is off."""
    global _backend
    backend, _backend = _backend, None
    if backend is not None:
        backend.shutdown()
