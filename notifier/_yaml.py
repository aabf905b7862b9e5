"""YAML text → plain values, with the line of every key path and ${VAR} substitution.

``yaml.compose`` keeps each node's position; converting the nodes ourselves lets every
later check name a line, and lets us refuse duplicate keys (PyYAML keeps the last).
Values that came from the environment are remembered by path so messages never echo them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from notifier.errors import Problem

__all__ = ["Doc", "Path", "parse", "render_path"]

Path = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MAX_NODES = 1_000_000  # an alias "billion laughs" would otherwise expand without end;
# a config of 100,000 rooms holds about 300,000 nodes
_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what YAML marks count as lines
_FLOW_HINT = '; inside [ ] or { }, put ${VAR} in quotes: ["${VAR}"]'


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


class _TooBig(Exception):
    """The document expands past _MAX_NODES."""


class _Converter:
    """Walks composed nodes once, filling a Doc and collecting problems."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file, self.env = file, env
        self.doc = Doc(None)
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def problem(self, path: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, render_path(path), message))

    def value(self, node: yaml.Node, path: Path, line: int) -> Any:
        self.doc.lines[path] = line
        self._count += 1
        if self._count > _MAX_NODES:
            raise _TooBig
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path, line)
        if id(node) in self._active:
            self.problem(path, line, "an alias refers to itself; YAML here cannot be recursive")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return [self.value(item, (*path, i), _line(item)) for i, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))

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

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            if key in first:
                self.problem((*path, key), _line(key_node),
                             f"duplicate key '{key}' (first at line {first[key]})")
                continue
            first[key] = _line(key_node)
            out[key] = self.value(value_node, (*path, key), _entry_line(key_node, value_node))
        for key_node, value_node in self.merged(merges, path, set()):
            key = self.key(key_node, path)
            if key is not None and key not in out:
                out[key] = self.value(value_node, (*path, key), _entry_line(key_node, value_node))
        return out

    def key(self, node: yaml.Node, path: Path) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self.problem(path, _line(node), "keys must be plain strings, not lists or mappings")
        return None

    def merged(self, sources: list[yaml.Node], path: Path,
               seen: set[int]) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """The entries ``<<`` merges in, earlier sources first (they take precedence)."""
        for source in sources:
            items = source.value if isinstance(source, yaml.SequenceNode) else [source]
            for item in items:
                if not isinstance(item, yaml.MappingNode):
                    self.problem(path, _line(item), "'<<' must merge a mapping or a list of them")
                elif id(item) not in seen:
                    seen.add(id(item))
                    nested = [v for k, v in item.value if k.tag == _MERGE_TAG]
                    yield from ((k, v) for k, v in item.value if k.tag != _MERGE_TAG)
                    yield from self.merged(nested, path, seen)


#: libyaml's parser when PyYAML was built with it: 10,000 rooms compose in a fifth of the
#: time (``notifier run`` must reach its first poll within a second).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _entry_line(key: yaml.Node, value: yaml.Node) -> int:
    """A scalar is found on its own line; a collection under the key that opens it."""
    if isinstance(value, yaml.ScalarNode) and value.value != "":
        return _line(value)
    return _line(key)


def parse(text: str, file: str, env: Mapping[str, str]) -> tuple[Doc | None, list[Problem]]:
    """Parse ``text``; return the Doc (None when the YAML is unreadable) and the problems."""
    try:
        root = _compose(text)
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(exc, text, file)]
    except RecursionError:
        return None, [Problem(file, None, "", "YAML nesting is too deep")]
    converter = _Converter(file, env)
    if root is None:
        return converter.doc, []
    try:
        converter.doc.data = converter.value(root, (), _line(root))
    except (_TooBig, RecursionError):
        problem = Problem(file, None, "", "the document is too large once its aliases expand")
        return None, [problem]
    return converter.doc, converter.problems


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        if _LOADER is yaml.SafeLoader:
            raise
    # the pure-Python parser's messages and marks are the ones documented and tested
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _syntax_problem(exc: yaml.YAMLError, text: str, file: str) -> Problem:
    # str(exc) quotes the offending source line, which may hold a secret: rebuild the
    # message from the parts that do not.
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "; ".join(parts) or "invalid YAML"
        if mark is None:
            return Problem(file, None, "", f"YAML syntax error: {message}")
        lines = _LINE_BREAK.split(text)
        line = lines[mark.line] if mark.line < len(lines) else ""
        hint = _FLOW_HINT if "${" in line and ("[" in line or "{" in line) else ""
        return Problem(file, mark.line + 1, "",
                       f"YAML syntax error: {message} (column {mark.column + 1}){hint}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(file, line, "", f"YAML syntax error: unacceptable character "
                                       f"#x{code:04x}; remove it")
    return Problem(file, None, "", "YAML syntax error")
