"""Subcommands beyond run/check/demo, one module each, registered in ``notifier.cli``.

Each module exposes ``register(subparsers) -> None``; like ``cli`` it may print for
people and return exit codes, and nothing else in the package may.
"""
