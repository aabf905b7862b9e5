"""Rule matching throughput: the compiled matcher against a naive per-rule loop.

For 10, 100 and 1,000 keyword rules, both match the same synthetic chat messages in the
same run, and both must name the same rules for every message (checked). The naive loop
is what a first version would write: for each rule, for each keyword, a precompiled
whole-word regex over the normalised text.

    python bench/rules_bench.py                 # prints a table, writes bench/results/rules.json
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import random
import re
import time
from pathlib import Path

from notifier.config import Rule
from notifier.rules import compile_rules, normalize

ROOMS = frozenset({"rm_bench"})
RESULTS = Path(__file__).parent / "results" / "rules.json"


def corpus(rng: random.Random, size: int) -> tuple[list[str], list[dict]]:
    """A vocabulary and ``size`` messages of 5..40 words drawn from it (Zipf-like)."""
    vocab = [f"w{i}" for i in range(5000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    messages = []
    for i in range(size):
        words = rng.choices(vocab, weights, k=rng.randint(5, 40))
        messages.append({"id": f"msg_{i}", "body": " ".join(words).capitalize() + "!",
                         "messageType": "user", "userType": "member", "roomID": "rm_bench",
                         "links": []})
    return vocab, messages


def rules_for(rng: random.Random, vocab: list[str], count: int) -> list[Rule]:
    """``count`` rules of 3 keywords each (a third of them two-word phrases)."""
    def keyword() -> str:
        return " ".join(rng.sample(vocab[50:], rng.choice((1, 1, 2))))

    return [Rule(f"rule{i}", ("hook",), keywords=tuple(keyword() for _ in range(3)))
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


def rate(fn, messages: list[dict], seconds: float) -> float:
    """Messages per second of ``fn`` over ``messages``, repeated for about ``seconds``."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for message in messages:
            fn(message)
        done += len(messages)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(42)
    vocab, messages = corpus(rng, args.messages)
    rows = []
    for count in (10, 100, 1000):
        rules = rules_for(rng, vocab, count)
        matcher, naive = compile_rules(rules), Naive(rules)
        compiled_match = functools.partial(matcher.match, kind="message.created", rooms=ROOMS)
        hits = 0
        for message in messages:
            got = compiled_match(message)
            assert got == naive.match(message), (message, got)
            hits += bool(got)
        row = {"rules": count, "compiled_per_s": round(rate(compiled_match, messages,
                                                             args.seconds)),
               "naive_per_s": round(rate(naive.match, messages, args.seconds)),
               "messages_matching": round(hits / len(messages), 3)}
        row["speedup"] = round(row["compiled_per_s"] / row["naive_per_s"], 1)
        rows.append(row)
        print(f"{count:>5} rules: compiled {row['compiled_per_s']:>9,} msg/s   naive "
              f"{row['naive_per_s']:>9,} msg/s   x{row['speedup']}   "
              f"({row['messages_matching']:.0%} of messages match a rule)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"python": platform.python_version(),
                                   "machine": platform.machine(), "messages": len(messages),
                                   "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
