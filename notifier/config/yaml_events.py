"""YAML events → plain values, without ever holding the whole node tree.

``yaml.compose`` builds a node (with two position marks) for every value before the first
one is converted: at 100,000 rooms that tree dwarfs the file (bench/RESULTS.md); the heap keeps the
pages once it is freed. Here each collection is converted as its events arrive; only
what an alias may need again (an anchored value), a ``<<`` merge source, a key and each
scalar become nodes, handed to the same ``NodeConverter`` that handles a whole tree, so
both read a file the same way. Anything unusual (a syntax error, a second document)
raises ``NotStreamable``: the caller then composes the whole tree, whose messages are
the documented ones. A document too large (``TooBig``) is reported as it is found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.events import (
    Event,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from notifier.config.yaml_nodes import (
    MERGE_TAG,
    Doc,
    NodeConverter,
    Path,
    entry_line,
    node_line,
)
from notifier.errors import Problem

__all__ = ["NotStreamable", "stream"]

if TYPE_CHECKING:
    _Parser = yaml.CSafeLoader
else:  # libyaml's parser when PyYAML was built with it (C: far faster, bench/RESULTS.md)
    _Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class NotStreamable(Exception):
    """The text cannot be read event by event; compose the whole tree instead."""


class _Events(_Parser, Composer):
    """The parser's events, and PyYAML's own composer for the values that become nodes.
    (The pure-Python parser has methods like ``peek`` of its own: our names avoid them.)"""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.anchors = {}

    def take_event(self) -> Event:
        """The next event, consumed."""
        event = self.get_event()
        assert event is not None
        return event

    def look_ahead(self) -> Event:
        """The next event, left in place."""
        event = self.peek_event()
        assert event is not None
        return event

    def take_node(self) -> yaml.Node:
        """The next value as a node (an alias: the anchored node)."""
        node = self.compose_node(None, None)  # type: ignore[arg-type]  # no path resolvers
        assert node is not None
        return node


class _EventConverter(NodeConverter):
    """Converts collections from their events; scalars and anchored values via nodes."""

    def __init__(self, file: str, env: Mapping[str, str], events: _Events) -> None:
        super().__init__(file, env)
        self.events = events

    def document(self) -> Any:
        events = self.events
        events.take_event()  # stream start
        if events.check_event(StreamEndEvent):
            return None
        events.take_event()  # document start
        data = self.next_value((), None, 0)
        events.take_event()  # document end
        if not events.check_event(StreamEndEvent):
            raise NotStreamable("more than one document")
        return data

    def next_value(self, path: Path, key: yaml.Node | None, parent_line: int) -> Any:
        """The next value, at ``path`` (under ``key`` in a mapping)."""
        event = self.events.look_ahead()
        if isinstance(event, MappingStartEvent | SequenceStartEvent) and event.anchor is None:
            line = node_line(key) if key is not None else _event_line(event)
            self.enter(path, line, parent_line)
            self.events.take_event()
            if isinstance(event, MappingStartEvent):
                return self.mapping_events(path, line)
            return self.sequence_events(path, line)
        node = self.events.take_node()
        line = entry_line(key, node) if key is not None else node_line(node)
        return self.value(node, path, line, parent_line)

    def sequence_events(self, path: Path, line: int) -> list[Any]:
        out: list[Any] = []
        while not self.events.check_event(SequenceEndEvent):
            out.append(self.next_value((*path, len(out)), None, line))
        self.events.take_event()
        return out

    def mapping_events(self, path: Path, line: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        merges: list[yaml.Node] = []
        while not self.events.check_event(MappingEndEvent):
            key_node = self.events.take_node()
            if key_node.tag == MERGE_TAG:
                merges.append(self.events.take_node())
                continue
            key = self.new_key(key_node, path, first)
            if key is None:
                self.events.take_node()  # skipped, as a whole tree's converter skips it
                continue
            out[key] = self.next_value((*path, key), key_node, line)
        self.events.take_event()
        self.merge(out, merges, path, line)
        return out


def _event_line(event: Event) -> int:
    assert event.start_mark is not None
    return event.start_mark.line + 1


def stream(text: str, file: str, env: Mapping[str, str]) -> tuple[Doc, list[Problem]]:
    """Read ``text`` as ``NodeConverter`` reads its composed tree; raise NotStreamable
    when the whole tree must be composed instead (errors, oddities), TooBig when the
    document is too large (the tree would be too)."""
    try:
        events = _Events(text)  # the pure-Python reader checks every character here
        converter = _EventConverter(file, env, events)
        try:
            converter.doc.data = converter.document()
        finally:
            events.dispose()
    except (yaml.YAMLError, RecursionError) as exc:
        raise NotStreamable(type(exc).__name__) from None
    return converter.doc, converter.problems
