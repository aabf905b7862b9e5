"""Rules compiled once into a matcher; pure (no I/O). See ``_text`` for how text compares.

``compile_rules(config.rules)`` gives a Matcher: ``match(message, kind, rooms)`` names the
rules a message satisfies; ``explain`` adds the keywords and patterns that made each
match (``notifier test-rules``); ``lint`` lists rules that can never match.
"""

from notifier.rules._lint import lint
from notifier.rules._matcher import CONDITIONS, Matcher, RuleMatch, compile_rules
from notifier.rules._text import normalize, tokens

__all__ = [
    "CONDITIONS",
    "Matcher",
    "RuleMatch",
    "compile_rules",
    "lint",
    "normalize",
    "tokens",
]
