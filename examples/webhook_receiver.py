"""A minimal webhook receiver for shoal: verify, deduplicate, acknowledge.

    SHOAL_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 9000

Then submit a job with `"webhook": {"url": "http://127.0.0.1:9000/hooks"}`.
It answers 204 to authentic events (once per webhook-id) and 400 to anything
else, and prints one line per event.
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shoal.webhooks import InvalidSignature, verify

SECRETS = [s for s in os.environ.get("SHOAL_WEBHOOK_SECRET", "").split(",") if s]
seen: set[str] = set()  # use a store with a TTL in production: ids repeat only on retries


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            verify(dict(self.headers.items()), body, SECRETS)  # the raw body, before parsing
        except InvalidSignature as exc:
            self.send_response(400)
            self.end_headers()
            print(f"rejected: {exc}", flush=True)
            return
        webhook_id = self.headers["webhook-id"]
        if webhook_id not in seen:  # a retry of an event already handled: just acknowledge
            seen.add(webhook_id)
            event = json.loads(body)
            job = event["data"]
            audio = (job.get("audio") or {}).get("url", "-")
            print(f"{event['type']} {job['id']} {job['status']} {audio}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    port = parser.parse_args().port
    if not SECRETS:
        raise SystemExit("set SHOAL_WEBHOOK_SECRET (shoal up keeps it in .shoal/webhook-secret)")
    print(f"listening on http://127.0.0.1:{port}/hooks", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()


if __name__ == "__main__":
    main()
