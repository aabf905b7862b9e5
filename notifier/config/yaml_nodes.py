"""Composed YAML nodes → plain values, with the line of every key path and ${VAR} substitution.

Converting the nodes ourselves lets every later check name a line, and lets us refuse
duplicate keys (PyYAML keeps the last). Values that came from the environment are
remembered by path so messages never echo them. ``notifier.config.yaml_events`` feeds this
converter event by event so that a large file never exists as one whole node tree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from notifier.errors import Problem

__all__ = ["MERGE_TAG", "Doc", "NodeConverter", "Path", "TooBig", "entry_line", "node_line",
           "render_path"]

Path = tuple[str | int, ...]

MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MAX_NODES = 1_000_000  # a config of 100,000 rooms holds about 300,000 nodes
#: Aliases may repeat values, not multiply the document: once this many values were read
#: again through aliases, they may be at most this share of all values read (the rule Go's
#: yaml.v3 applies), so a "billion laughs" stops after thousands of values, not a million.
_ALIAS_FLOOR = 10_000
_ALIAS_SHARE = 0.99
_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def render_path(path: Path) -> str:
    """``("rules", 1, "notify")`` → ``rules[1].notify``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


@dataclass
class Doc:
    """A parsed file: plain values plus where each one came from."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    """The line of each path, except those on their parent's line (``line`` finds them):
    a config of 100,000 rooms needs half the entries."""
    sources: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    """The environment variables substituted into the string at each path."""
    broken: set[Path] = field(default_factory=set)
    """Paths whose value could not be read (already reported): check nothing more there."""

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor when it is missing."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


class TooBig(Exception):
    """The document expands past _MAX_NODES, or its aliases past _ALIAS_SHARE; the
    message says which."""


class NodeConverter:
    """Walks composed nodes once, filling a Doc and collecting problems."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file, self.env = file, env
        self.doc = Doc(None)
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0
        self._walked: set[int] = set()
        """Collections walked once: walking one again is an alias's doing."""
        self._aliased = 0
        self._alias_depth = 0

    def problem(self, path: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, render_path(path), message))

    def enter(self, path: Path, line: int, parent_line: int) -> None:
        """Record the line of the value at ``path`` and count it against _MAX_NODES."""
        if line != parent_line:
            self.doc.lines[path] = line
        self._count += 1
        if self._alias_depth:
            self._aliased += 1
            if self._aliased > _ALIAS_FLOOR and self._aliased > _ALIAS_SHARE * self._count:
                raise TooBig(f"aliases expand the document more than "
                             f"{round(1 / (1 - _ALIAS_SHARE))}-fold (an alias bomb?); an "
                             "alias may repeat a value, not multiply the document")
        if self._count > _MAX_NODES:
            expanded = " once its aliases expand" if self._aliased else ""
            raise TooBig(f"the document holds more than {_MAX_NODES:,} values{expanded}; "
                         "split it")

    def value(self, node: yaml.Node, path: Path, line: int, parent_line: int = 0) -> Any:
        self.enter(path, line, parent_line)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path, line)
        if id(node) in self._active:
            self.problem(path, line, "an alias refers to itself; YAML here cannot be recursive")
            return None
        self._active.add(id(node))
        again = id(node) in self._walked
        self._walked.add(id(node))
        self._alias_depth += again
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path, line)
            return [self.value(item, (*path, i), node_line(item), line)
                    for i, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))
            self._alias_depth -= again

    def scalar(self, node: yaml.ScalarNode, path: Path, line: int) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return node.value  # timestamps are parsed (and their timezone checked) by the schema
        if node.tag == _STR_TAG:
            return self.substitute(node.value, path, line)
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception as exc:  # int("x") under !!int and the like: the user's mistake
            detail = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            self.problem(path, line, f"cannot read this value as {node.tag}: {detail}")
            self.doc.broken.add(path)
            return None

    def substitute(self, text: str, path: Path, line: int) -> str:
        if "$" not in text:
            return text
        names: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                self.problem(path, line, "unterminated ${; write $${ for a literal ${")
            elif not _NAME.fullmatch(name):
                self.problem(path, line, f"invalid variable name in ${{{name[:40]}}}; "
                                         "use letters, digits and _")
            elif name not in self.env:
                self.problem(path, line, f"environment variable {name} is not set")
            else:
                names.append(name)
                return self.env[name]
            return ""

        count = len(self.problems)
        result = _VARIABLE.sub(replace, text)
        if len(self.problems) > count:
            self.doc.broken.add(path)
        if names:
            self.doc.sources[path] = tuple(names)
        return result

    def mapping(self, node: yaml.MappingNode, path: Path, line: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merges.append(value_node)
                continue
            key = self.new_key(key_node, path, first)
            if key is not None:
                out[key] = self.value(value_node, (*path, key), entry_line(key_node, value_node),
                                      line)
        self.merge(out, merges, path, line)
        return out

    def new_key(self, node: yaml.Node, path: Path, first: dict[str, int]) -> str | None:
        """The key ``node`` names, or None (reported) when it is not a string or repeats."""
        key = self.key(node, path)
        if key is None:
            return None
        if key in first:
            self.problem((*path, key), node_line(node),
                         f"duplicate key '{key}' (first at line {first[key]})")
            return None
        first[key] = node_line(node)
        return key

    def key(self, node: yaml.Node, path: Path) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return sys.intern(str(node.value))  # 100,000 rooms spell "key" once, not each
        self.problem(path, node_line(node), "keys must be plain strings, not lists or mappings")
        return None

    def merge(self, out: dict[str, Any], sources: list[yaml.Node], path: Path,
              line: int) -> None:
        """Add what ``<<`` merges in to ``out``, for keys it does not set itself."""
        for key_node, value_node in self.merged(sources, path, set()):
            key = self.key(key_node, path)
            if key is not None and key not in out:
                out[key] = self.value(value_node, (*path, key),
                                      entry_line(key_node, value_node), line)

    def merged(self, sources: list[yaml.Node], path: Path,
               seen: set[int]) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """The entries ``<<`` merges in, earlier sources first (they take precedence)."""
        for source in sources:
            items = source.value if isinstance(source, yaml.SequenceNode) else [source]
            for item in items:
                if not isinstance(item, yaml.MappingNode):
                    self.problem(path, node_line(item),
                                 "'<<' must merge a mapping or a list of them")
                elif id(item) not in seen:
                    seen.add(id(item))
                    nested = [v for k, v in item.value if k.tag == MERGE_TAG]
                    yield from ((k, v) for k, v in item.value if k.tag != MERGE_TAG)
                    yield from self.merged(nested, path, seen)


def node_line(node: yaml.Node) -> int:
    """The line ``node`` starts on (1-based)."""
    return int(node.start_mark.line) + 1


def entry_line(key: yaml.Node, value: yaml.Node) -> int:
    """A scalar is found on its own line; a collection under the key that opens it."""
    if isinstance(value, yaml.ScalarNode) and value.value != "":
        return node_line(value)
    return node_line(key)
