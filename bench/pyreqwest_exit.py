"""Does a process abort at exit after closing a pyreqwest client? (issue 16)

    python bench/pyreqwest_exit.py [--runs 30]

pyreqwest 0.15's runtime threads finish dropping a closed client's connections in the
background; when the interpreter is finalizing meanwhile, CPython aborts the process
("Fatal Python error: PyGILState_Release", SIGABRT, exit code 134).
notifier.delivery.transport_reqwest waits EXIT_SETTLE at exit after the last close. Each
run is a fresh process that POSTs once through ReqwestTransport to an in-process
receiver, closes the transport, stops the receiver (closing the connection: the
trigger) and exits; runs alternate with the wait off and on. Re-run it when upgrading
pyreqwest: if the 'off' column stays at 0 the wait may go.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import asyncio, sys
from notifier.config import Webhook
from notifier.delivery import transport_reqwest
from notifier.events import CREATED, Delivery, Event
from notifier.testing import WebhookReceiver

if sys.argv[1] == "off":
    transport_reqwest.EXIT_SETTLE = 0.0

async def main():
    async with WebhookReceiver() as rx:
        hook = Webhook("crm", url=rx.url + "/crm", allow_private_urls=True)
        client = transport_reqwest.ReqwestTransport(hook)
        message = {"id": "m1", "body": "refund", "createdAt": "2026-11-25T10:00:00Z",
                   "editedAt": "0001-01-01T00:00:00Z"}
        event = Event.from_message(CREATED, "r1", message, ("refunds",), 0.0)
        assert await client.post(Delivery.for_webhook(event, "crm", ("refunds",))) == 200
        await client.close()

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    aborted = {"off": 0, "on": 0}
    for _ in range(args.runs):
        for mode in aborted:
            done = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT,
                                  capture_output=True, check=False)
            aborted[mode] += done.returncode != 0
    print(f"{args.runs} runs each: aborted at exit with the wait off: {aborted['off']}, "
          f"on: {aborted['on']}")


if __name__ == "__main__":
    main()
