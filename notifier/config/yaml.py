"""YAML text → plain values, with the line of every key path and ${VAR} substitution.

``parse`` reads a file event by event (``yaml_events``) so a large one never exists as a
whole node tree; when that cannot be done (syntax errors, several documents) it
composes the tree and converts it (``yaml_nodes``), which reads a file the same way
and gives the documented messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from notifier.config.yaml_events import NotStreamable, stream
from notifier.config.yaml_nodes import Doc, NodeConverter, Path, TooBig, node_line, render_path
from notifier.errors import Problem

__all__ = ["Doc", "Path", "parse", "render_path"]

_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what YAML marks count as lines
_FLOW_HINT = '; inside [ ] or { }, put ${VAR} in quotes: ["${VAR}"]'

#: libyaml's parser when PyYAML was built with it, for the whole tree (``yaml_events``
#: picks the same one): 10,000 rooms compose in a fifth of the pure-Python time.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str, file: str, env: Mapping[str, str]) -> tuple[Doc | None, list[Problem]]:
    """Parse ``text``; return the Doc (None when the YAML is unreadable) and the problems."""
    try:
        return stream(text, file, env)
    except NotStreamable:
        return _parse_tree(text, file, env)
    except TooBig as exc:  # composing the whole tree would only take longer to say so
        return None, [Problem(file, None, "", str(exc))]


def _parse_tree(text: str, file: str,
                env: Mapping[str, str]) -> tuple[Doc | None, list[Problem]]:
    try:
        root = _compose(text)
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(exc, text, file)]
    except RecursionError:
        return None, [Problem(file, None, "", "YAML nesting is too deep")]
    converter = NodeConverter(file, env)
    if root is None:
        return converter.doc, []
    try:
        converter.doc.data = converter.value(root, (), node_line(root))
    except TooBig as exc:
        return None, [Problem(file, None, "", str(exc))]
    except RecursionError:
        return None, [Problem(file, None, "", "YAML nesting is too deep")]
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
