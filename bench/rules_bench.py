"""Rule matching throughput: the compiled matcher against a naive per-rule loop.

For 10, 100 and 1,000 keyword rules of 5 keywords each (a third of them two-word
phrases), both match the same synthetic chat messages in the same run, and both must name
the same rules for every message (checked). The naive loop is what a first version would
write: for each rule, for each keyword, a precompiled whole-word regex over the
normalised text. Two corpora, both 2,000 messages of 5 to 40 words drawn Zipf-like:

* ``zipf``: a 5,000-word vocabulary, keywords from all but its 50 commonest words: most
  messages trigger some rule at 1,000 rules (a worst case).
* ``realistic``: a 1,000,000-word vocabulary (a chat's long tail of names, products and
  typos), keywords from past its 5,000 commonest words: a few % of messages trigger a
  rule, as in a real chat where most messages trigger none.

The compiled matcher's figure is the median of 3 timed repeats; the naive loop's is its
one checked pass over the messages (it takes tens of seconds at 1,000 rules).

    python bench/rules_bench.py        # prints tables, writes bench/results/rules.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import platform
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from notifier.config import Rule
from notifier.rules import compile_rules, normalize

ROOMS = frozenset({"rm_bench"})
RESULTS = Path(__file__).parent / "results" / "rules.json"
RULE_COUNTS = (10, 100, 1000)
KEYWORDS_PER_RULE = 5
TARGET_PER_S, TARGET_SPEEDUP = 300_000, 150
CORPORA = {  # name: (vocabulary size, keywords drawn from this rank on)
    "zipf": (5_000, 50),
    "realistic": (1_000_000, 5_000),
}


class Vocabulary:
    """Words ``w0``, ``w1``, … drawn with weight 1/(rank + 1)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cumulative = list(itertools.accumulate(1 / (i + 1) for i in range(size)))

    def words(self, rng: random.Random, k: int) -> list[str]:
        return [f"w{i}" for i in rng.choices(range(self.size), cum_weights=self._cumulative,
                                             k=k)]


def messages_from(vocabulary: Vocabulary, rng: random.Random, size: int) -> list[dict]:
    """``size`` messages of 5..40 words."""
    return [{"id": f"msg_{i}", "body": " ".join(vocabulary.words(rng, rng.randint(5, 40)))
             .capitalize() + "!", "messageType": "user", "userType": "member",
             "roomID": "rm_bench", "links": []} for i in range(size)]


def rules_for(rng: random.Random, vocabulary: Vocabulary, first_rank: int,
              count: int) -> list[Rule]:
    """``count`` rules of 5 keywords of ranks >= ``first_rank`` (a third two-word phrases)."""
    def keyword() -> str:
        return " ".join(f"w{rng.randrange(first_rank, vocabulary.size)}"
                        for _ in range(rng.choice((1, 1, 2))))

    return [Rule(f"rule{i}", ("hook",),
                 keywords=tuple(keyword() for _ in range(KEYWORDS_PER_RULE)))
            for i in range(count)]


class Naive:
    """One whole-word regex per keyword, looped over rule by rule."""

    def __init__(self, rules: list[Rule]) -> None:
        self._rules = [(rule.name, [re.compile(rf"(?<!\w){re.escape(normalize(k))}(?!\w)")
                                    for k in rule.keywords]) for rule in rules]

    def match(self, message: dict) -> tuple[str, ...]:
        text = normalize(message["body"])
        return tuple(name for name, patterns in self._rules
                     if any(p.search(text) for p in patterns))


def rate(fn: Callable[[dict], object], messages: list[dict], seconds: float) -> float:
    """Messages per second of ``fn`` over ``messages``, repeated for about ``seconds``."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for message in messages:
            fn(message)
        done += len(messages)
    return done / elapsed


def measure(rules: list[Rule], messages: list[dict], seconds: float) -> dict:
    """One row: both matchers' rates, checked to agree on every message."""
    matcher, naive = compile_rules(rules), Naive(rules)
    compiled_match = functools.partial(matcher.match, kind="message.created", rooms=ROOMS)
    hits, started = 0, time.perf_counter()
    for message in messages:
        expected = naive.match(message)
        assert compiled_match(message) == expected, (message, expected)
        hits += bool(expected)
    naive_per_s = len(messages) / (time.perf_counter() - started)
    runs = [round(rate(compiled_match, messages, seconds)) for _ in range(3)]
    compiled_per_s = round(statistics.median(runs))
    return {"rules": len(rules), "compiled_per_s": compiled_per_s, "compiled_runs": runs,
            "naive_per_s": round(naive_per_s, 1),
            "speedup": round(compiled_per_s / naive_per_s),
            "messages_matching": round(hits / len(messages), 3)}


def verdict(row: dict) -> str:
    met = row["compiled_per_s"] >= TARGET_PER_S and row["speedup"] >= TARGET_SPEEDUP
    return (f"target (>= {TARGET_PER_S:,} msg/s and >= x{TARGET_SPEEDUP} at 1,000 rules): "
            f"{'MET' if met else 'MISSED'} ({row['compiled_per_s']:,} msg/s, "
            f"x{row['speedup']:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed repeat")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    for corpus, (size, first_rank) in CORPORA.items():
        vocabulary = Vocabulary(size)
        messages = messages_from(vocabulary, random.Random(f"{corpus}-messages"),
                                 args.messages)
        print(f"{corpus} corpus ({size:,}-word vocabulary, keywords of rank >= {first_rank:,})")
        for count in RULE_COUNTS:
            rules = rules_for(random.Random(f"{corpus}-{count}"), vocabulary, first_rank, count)
            row = {"corpus": corpus, **measure(rules, messages, args.seconds)}
            rows.append(row)
            print(f"  {count:>5} rules: compiled {row['compiled_per_s']:>9,} msg/s   naive "
                  f"{row['naive_per_s']:>9,.0f} msg/s   x{row['speedup']:<6,} "
                  f"({row['messages_matching']:.1%} of messages match a rule)")
        print(f"  {verdict(rows[-1])}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "python": platform.python_version(), "machine": platform.machine(),
        "messages": args.messages, "keywords_per_rule": KEYWORDS_PER_RULE,
        "corpora": {name: {"vocabulary": size, "keywords_from_rank": first_rank}
                    for name, (size, first_rank) in CORPORA.items()},
        "target": {"rules": 1000, "per_s": TARGET_PER_S, "speedup": TARGET_SPEEDUP},
        "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
