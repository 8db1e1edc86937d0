"""A webhook receiver for jobrunner's deliveries: verifies each with the Standard Webhooks
reference package, drops repeats by webhook-id, answers at once, prints one line a job.

    pip install standardwebhooks
    JOBRUNNER_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --listen 127.0.0.1:9000

Point an endpoint at it ([[webhooks.endpoints]] url = "http://127.0.0.1:9000/hooks", with
allow_private = true for a receiver on this machine), or `submit --callback` it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

MAX_BODY = 1 << 20  # jobrunner sends at most 64 KB
REMEMBERED = 10_000  # webhook-ids kept to drop repeats (a retry after a lost answer)


class Seen:
    """The most recent webhook-ids, bounded: a redelivery of one already handled is
    answered 2xx and otherwise ignored (delivery is at least once)."""

    def __init__(self, size: int) -> None:
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.size = size
        self.lock = threading.Lock()

    def first_time(self, msg_id: str) -> bool:
        with self.lock:
            if msg_id in self.ids:
                return False
            self.ids[msg_id] = None
            if len(self.ids) > self.size:
                self.ids.popitem(last=False)
            return True


def make_handler(webhook: Webhook, seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(413)
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = webhook.verify(body, headers)  # signature and timestamp (5 min)
            except WebhookVerificationError:
                self._answer(401)
                return
            self._answer(204)  # answer first: slow work belongs in a job of its own
            if seen.first_time(headers["webhook-id"]):
                data = event.get("data", {})
                print(
                    f"{event['type']} job {data.get('id')} {data.get('state')} "
                    f"result={json.dumps(data.get('result'))}",
                    flush=True,
                )

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # one line per event, printed above

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9000", metavar="HOST:PORT")
    args = parser.parse_args()
    secret = os.environ.get("JOBRUNNER_WEBHOOK_SECRET")
    if not secret:
        print("set JOBRUNNER_WEBHOOK_SECRET to the [webhooks] secret", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), make_handler(Webhook(secret), Seen(REMEMBERED)))
    print(f"receiving on http://{host}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop quietly
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
