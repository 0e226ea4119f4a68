"""A real headless browser for the tests: Debian's chromium through its chromedriver.

Selenium is given the driver's path, so its manager never looks for (or
downloads) one, and SE_AVOID_STATS keeps it from sending statistics. The
browser resolves no host but the loopback addresses: a page that needs the
internet fails here as it would on an air-gapped cluster.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    # Offline: every name but the loopback ones fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
)


def _installed() -> tuple[str, str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        raise RuntimeError(
            f"the browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} "
            "missing): `make test` installs them (apt-get install chromium chromium-driver)"
        )
    return CHROMIUM, CHROMEDRIVER


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with its own profile folder, quit afterwards."""
    binary, driver = _installed()
    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """`check()` once it is truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the page is still changing under us
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout:g} s (last: {last!r})")
