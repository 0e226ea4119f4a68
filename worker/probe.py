"""`python -m worker.probe`: exit 0 while this worker's heartbeat is fresh.

For Kubernetes exec probes. It asks nothing of Celery (no `celery inspect`,
which stalls under load) and nothing of Redis: the worker's heartbeat thread
touches SHOAL_WORKER_ALIVE_FILE every third of SHOAL_LEASE_SECONDS once the
engine is loaded, and stops when a job hangs past its timeout.
"""

from __future__ import annotations

import sys
import time

from shoal.settings import get_settings


def main() -> int:
    settings = get_settings()
    max_age = max(3 * settings.lease_seconds, 10.0)
    try:
        age = time.time() - settings.worker_alive_file.stat().st_mtime
    except FileNotFoundError:
        print(f"not started: {settings.worker_alive_file} does not exist yet", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"stale heartbeat: {age:.0f} s old (limit {max_age:.0f} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
