"""Config files an attacker or an accident made huge: refused fast, with the right reason."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

from notifier.config import MAX_CONFIG_BYTES, yaml_nodes
from notifier.config.yaml import parse
from notifier.delivery.formats import check_config

FIFTY_MB = 50 * 1024 * 1024


def billion_laughs(levels: int = 9) -> str:
    """Each level lists the one before ten times: 10**levels values from 10 lines."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]"
              for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_fifty_megabyte_rules_file_is_refused_before_it_is_parsed(tmp_path: Path):
    """The size is checked first: a clear message at once, with no memory spent on it."""
    path = tmp_path / "rules.yaml"
    room = "  - key: room-{:08d}\n"
    text = "rooms:\n" + "".join(map(room.format, range(FIFTY_MB // len(room.format(0)) - 1)))
    path.write_text(text + "#" * (FIFTY_MB - len(text) - 1) + "\n")
    assert path.stat().st_size == FIFTY_MB
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problems = check_config(str(path), env={})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [str(p) for p in problems] == [
        f"{path}: file is 52,428,800 bytes; the limit is {MAX_CONFIG_BYTES:,} bytes "
        "(10 MiB): split off what makes it so large"]
    assert time.perf_counter() - started < 1
    assert peak < 1024 * 1024


def test_a_file_just_under_the_limit_is_read(tmp_path: Path):
    """The limit is the limit: a file of exactly MAX_CONFIG_BYTES is parsed (and here found
    to lack every section), not refused for its size."""
    path = tmp_path / "rules.yaml"
    path.write_text("#" * (MAX_CONFIG_BYTES - 1) + "\n")
    problems = check_config(str(path), env={})
    assert problems and not any("limit" in p.message for p in problems)


def test_an_alias_bomb_is_refused_in_milliseconds_for_its_aliases(tmp_path: Path):
    """A "billion laughs" (10**9 values from 10 lines) stops after thousands of values,
    with a message naming the aliases, in the event path and the whole-tree path alike."""
    for text in (billion_laughs(), billion_laughs() + "---\n"):  # "---": a second document
        started = time.perf_counter()
        doc, problems = parse(text, "rules.yaml", {})
        assert time.perf_counter() - started < 0.5
        assert doc is None
        assert [p.message for p in problems] == [
            "aliases expand the document more than 100-fold (an alias bomb?); an alias may "
            "repeat a value, not multiply the document"]


def test_a_document_of_too_many_values_says_so_without_blaming_aliases(monkeypatch):
    """More values written out than the limit: the message says that, not "aliases".
    (The limit is lowered to 1,000 here: a million values take seconds to read.)"""
    monkeypatch.setattr(yaml_nodes, "_MAX_NODES", 1000)
    for text in ("rooms: [" + "1, " * 1001 + "]\n", "rooms: [" + "1, " * 1001 + "]\n---\n"):
        doc, problems = parse(text, "rules.yaml", {})
        assert doc is None
        assert [p.message for p in problems] == [
            "the document holds more than 1,000 values; split it"]


def test_anchors_used_as_intended_are_read():
    """Thousands of merges of one anchored mapping, and a list repeated a few times, load:
    aliases that repeat values are fine."""
    items = "".join(f"  - {{<<: *defaults, n: {i}}}\n" for i in range(5000))
    text = ("defaults: &defaults {a: 1, b: 2, c: 3, d: 4}\n"
            "big: &big [" + ", ".join(map(str, range(3000))) + "]\n"
            "copies: [*big, *big, *big]\n"
            f"items:\n{items}")
    doc, problems = parse(text, "rules.yaml", {})
    assert problems == [] and doc is not None
    assert doc.data["items"][4999] == {"n": 4999, "a": 1, "b": 2, "c": 3, "d": 4}
    assert doc.data["copies"][2][2999] == 2999
