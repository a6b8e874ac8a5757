"""Real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) through Selenium, and a real ``agiqa serve``.

Skips (with the reason) where the browser or its driver is not installed: CI installs them (``.ci/run``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def need_browser() -> None:
    """Skip unless Chromium, chromedriver and selenium are all here."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver; .ci/run does)")
    pytest.importorskip("selenium", reason="selenium is in the dev extra: pip install -e '.[dev]'")


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium with a fresh profile; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="agiqa-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def agiqa_server(*args: str, timeout: float = 240.0) -> Iterator[str]:
    """``agiqa serve`` on a free port of 127.0.0.1 (the real command, the default model); yields its base URL."""
    port = free_port()
    agiqa = Path(sys.executable).parent / "agiqa"
    cmd = [str(agiqa), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"agiqa serve did not start: {log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_for(driver, predicate, timeout: float = 120.0, what: str = "the page"):
    """Poll ``predicate(driver)`` until it is truthy (its value is returned)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(predicate, message=f"waiting for {what}")
