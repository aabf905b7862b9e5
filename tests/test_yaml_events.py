"""Reading YAML event by event: the same values, lines and problems as the whole node tree,
without holding that tree (a config of 100,000 rooms)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.config.yaml import _parse_tree, parse
from notifier.config.yaml_events import NotStreamable, stream
from notifier.config.yaml_nodes import Doc
from notifier.errors import Problem

ENV = {"TOKEN": "tok-secret", "HOST": "example.com"}

TRICKY = [
    # anchors, aliases and merges, in keys and values, before and after use
    "base: &b {timeout: 3s, retries: 2}\nhooks:\n  a: {<<: *b, retries: 5}\n  b:\n    <<: *b\n",
    "x: &x\n  - 1\n  - &y two\ny: [*x, *y, *x]\n",
    "m1: &m1 {a: 1}\nm2: &m2 {b: 2, <<: *m1}\nall:\n  <<: [*m2, {c: 3}]\n  a: 9\n",
    "k: &k name\n*k : value\n",
    "a: &a [*a]\n",
    "a: &a {self: *a}\n",
    "<<: 5\nz: 1\n",
    "<<: [1, {a: 2}]\n",
    # duplicate keys, an anchor inside the skipped one used afterwards
    "a: 1\na: &d {x: 2}\nb: *d\n",
    "a: 1\nb: 2\na: [3]\n",
    # keys that are not strings
    "? [1, 2]\n: x\n? {a: 1}\n: y\nok: 1\n",
    "1: one\ntrue: yes\nnull: nothing\n",
    # tags, bad values, timestamps, empty values
    "a: !!int x\nb: !!float 1.5\nc: 2024-05-01T00:00:00Z\nd:\ne: ''\nf: !!str 12\n",
    "s: !!set {a, b}\no: !!omap [{a: 1}]\nbin: !!binary aGk=\n",
    "a: !custom 1\n",
    # ${VAR}: set, unset, escaped, malformed, in keys' values deep down
    "u: ${TOKEN}\nv: $${TOKEN}\nw: ${MISSING}\nx: ${bad-name}\ny: ${TOKEN\n",
    "l:\n  - a: x${HOST}y\n    b: [\"${TOKEN}\", plain]\n",
    # flow and block styles mixed; nested empties; root kinds
    "a: {b: [1, {c: d}], e: []}\nf:\n- - x\n  - y\n- {}\n",
    "- 1\n- [2, 3]\n- {a: b}\n",
    "just a scalar\n",
    "",
    "# only a comment\n",
    "---\n",
    "--- &r\na: 1\n",
    "a: |\n  text\n  more\nb: >\n  folded\n",
    # what only the whole tree can answer: errors and several documents
    "a: [1, 2\n",
    "a: *nowhere\n",
    "a: &x 1\nb: &x 2\n",
    "a: 1\n---\nb: 2\n",
    "a: b: c\n",
    "a: \x07\n",
    "a: " + "[" * 300 + "]" * 300 + "\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n",
]


def _same(text: str) -> None:
    streamed = parse(text, "rules.yaml", ENV)
    whole = _parse_tree(text, "rules.yaml", ENV)
    assert streamed[1] == whole[1]
    if whole[0] is None:
        assert streamed[0] is None
        return
    got, want = streamed[0], whole[0]
    assert got is not None
    assert repr(got.data) == repr(want.data)
    assert (got.lines, got.sources, got.broken) == (want.lines, want.sources, want.broken)


@pytest.mark.parametrize("text", TRICKY)
def test_reading_by_events_gives_what_the_whole_tree_gives(text: str) -> None:
    """Values, lines, substituted variables, unreadable paths and problems all agree."""
    _same(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("a: [1, 2\n", "ParserError"),
    ("a: *nowhere\n", "ComposerError"),
    ("a: 1\n---\nb: 2\n", "more than one document"),
])
def test_what_events_cannot_read_is_left_to_the_whole_tree(text: str, reason: str) -> None:
    """Errors and several documents raise NotStreamable, so parse composes the whole tree."""
    with pytest.raises(NotStreamable, match=reason):
        stream(text, "rules.yaml", ENV)


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(["${TOKEN}", "${NOPE}", "$${x}", "a${HOST}b", ""]),
)
_KEYS = st.text(max_size=6) | st.sampled_from(["<<", "1", "true", "null"])


@st.composite
def _documents(draw: st.DrawFn) -> str:
    """Random nested data, shared parts included (safe_dump writes those as &anchors)."""
    shared = draw(st.lists(st.dictionaries(_KEYS, _SCALARS, max_size=3), max_size=2))
    leaves = _SCALARS | (st.sampled_from(shared) if shared else _SCALARS)
    data = draw(st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                             | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=25))
    return yaml.safe_dump(data, default_flow_style=draw(st.sampled_from([False, True, None])))


@settings(max_examples=150, deadline=None)
@given(_documents())
def test_random_documents_read_the_same_by_events_and_by_tree(text: str) -> None:
    """For any document, anchors and merges included, both readings agree."""
    _same(text)


def test_a_value_on_its_parents_line_is_found_through_the_parent() -> None:
    """Doc.line names the right line for every path, though only lines that differ from
    the parent's are stored."""
    doc, _ = parse("rooms:\n  - key: a\n  - id: b\n    key: c\nstate: x\n", "f", ENV)
    assert isinstance(doc, Doc)
    expected = {("rooms",): 1, ("rooms", 0): 2, ("rooms", 0, "key"): 2, ("rooms", 1): 3,
                ("rooms", 1, "id"): 3, ("rooms", 1, "key"): 4, ("state",): 5,
                ("rooms", 0, "missing"): 2}
    assert {path: doc.line(path) for path in expected} == expected
    assert ("rooms", 0, "key") not in doc.lines


def _peak(read: Any, text: str) -> int:
    tracemalloc.start()
    try:
        read(text, "rules.yaml", ENV)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_many_rooms_are_read_without_a_whole_node_tree() -> None:
    """Reading 5,000 rooms peaks at under half the memory composing their tree takes."""
    text = yaml.safe_dump({"rooms": [{"key": f"room-{i}"} for i in range(5000)]})
    assert _peak(parse, text) < 0.5 * _peak(_parse_tree, text)


def test_a_problem_found_while_streaming_keeps_its_line() -> None:
    """A mistake deep in a streamed collection is reported on its own line."""
    _, problems = parse("a:\n  - b: 1\n  - b: 2\n    b: 3\n", "f", ENV)
    assert problems == [Problem("f", 4, "a[1].b", "duplicate key 'b' (first at line 3)")]
