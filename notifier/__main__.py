"""Run the command line as ``python -m notifier``."""

from notifier.cli import main

raise SystemExit(main())
