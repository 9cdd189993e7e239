"""Serving the real API in the test process, HTTP calls to it, a headless Chromium for the
dashboard, and expected rankings computed independently from what a test produced."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import redis
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from api.app import create_app
from common.settings import Settings
from storage.daily import DaySnapshot, replace_day
from storage.figures import RankedBy
from tests.helpers import KASSA, Figures, free_port, settings_env, wait_until

QUANTUM = Decimal("0.0001")
PHONE = (412, 915)
"""The window size Chromium starts with: a phone's screen."""


@contextmanager
def serving(settings: Settings, *, probe_kafka: bool = True) -> Iterator[str]:
    """The API of ``settings`` served by uvicorn on a free port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, probe_kafka=probe_kafka),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = f"uvicorn did not start on 127.0.0.1:{port}"
            raise AssertionError(msg)
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def get(url: str) -> tuple[int, Any]:
    """``GET url``: the status and the decoded JSON body (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body else None


@contextmanager
def chromium(*, bidi: bool = False) -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium at :data:`PHONE` size, keeping the page's console log;
    ``bidi`` opens WebDriver BiDi (for ``chrome.network``).

    Needs the ``chromium`` and ``chromium-driver`` packages (``scripts/ensure-system-deps.sh``
    installs them); the test fails, never skips, without them.
    """
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail(
            "the dashboard test needs Debian's chromium and chromium-driver: run "
            "scripts/ensure-system-deps.sh as root, or: sudo apt-get install chromium "
            "chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={PHONE[0]},{PHONE[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.enable_bidi = bidi
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_window_size(*PHONE)
    try:
        yield chrome
    finally:
        chrome.quit()


def ranking_shown(chrome: webdriver.Chrome) -> list[tuple[str, int]]:
    """``(sku, units)`` of the ranking rows the dashboard shows."""
    try:
        rows = chrome.find_elements(By.CSS_SELECTOR, "#ranking tbody tr")
        return [(row.get_attribute("data-sku") or "", int(row.get_attribute("data-units") or 0))
                for row in rows]  # fmt: skip
    except StaleElementReferenceException:
        return []


def expected_ranking(
    figures: Figures,
    days: Iterable[date],
    store: str | None,
    by: RankedBy,
    limit: int,
) -> list[tuple[int, str, int, str]]:
    """``(rank, sku, units, revenue)`` of the top ``limit``: sums over ``days``, the plain way."""
    wanted = set(days)
    sums: dict[str, list[Any]] = {}
    for (day, scope, sku), row in figures.items():
        if day in wanted and scope == store:
            entry = sums.setdefault(sku, [0, Decimal(0)])
            entry[0] += row[0]
            entry[1] += row[3]
    index = 0 if by == "units" else 1
    ordered = sorted(sums.items(), key=lambda item: (-item[1][index], item[0]))[:limit]
    return [
        (rank, sku, units, str(revenue.quantize(QUANTUM)))
        for rank, (sku, (units, revenue)) in enumerate(ordered, start=1)
    ]


def as_rows(items: list[dict[str, Any]]) -> list[tuple[int, str, int, str]]:
    """``(rank, sku, units, revenue)`` of ranking JSON objects."""
    return [(i["rank"], i["sku"], i["units"], i["revenue"]) for i in items]


def fill_live_day(client: redis.Redis, space: str, day: date) -> None:
    """A small live day in two stores, written with the storage layer's own function."""
    totals = {"units": 3, "units_sold": 3, "units_returned": 0, "revenue": 30000, "checkouts": 2}
    snapshot = DaySnapshot(
        items={"a": (2, 2, 0, 20000, 1, 0), "b": (1, 1, 0, 10000, 1, 0)},
        totals={**totals, "lines": 2},
        store_items={
            "north": {"a": (2, 2, 0, 20000, 1, 0)},
            "south": {"b": (1, 1, 0, 10000, 1, 0)},
        },
        store_totals={
            "north": {"units": 2, "revenue": 20000, "checkouts": 1, "lines": 1},
            "south": {"units": 1, "revenue": 10000, "checkouts": 1, "lines": 1},
        },
    )
    expire_at = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    replace_day(client, space, "live", day, snapshot, expire_at=expire_at)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers and body text."""

    status: int
    headers: Message
    text: str


def call(url: str, authorization: str | None = None) -> Answer:
    """``GET url`` with ``authorization`` as the Authorization header (none when ``None``)."""
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read().decode())


def basic(user: str, password: str) -> str:
    """The Authorization header of HTTP Basic with ``user`` and ``password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextmanager
def serving_child(settings: Settings, tmp_path: Path, **variables: str) -> Iterator[str]:
    """``kassa serve`` in a child process with ``settings`` and ``variables``; yields its URL
    once /health answers."""
    port = free_port()
    env = {**settings_env(settings), "KASSA_API_PORT": str(port), **variables}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        child = subprocess.Popen([*KASSA, "serve"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert child.poll() is None, log.read_text()
            try:
                return call(f"{base}/health").status == 200
            except OSError:
                return False

        wait_until(healthy, 60, f"kassa serve on port {port}")
        yield base
    finally:
        child.terminate()
        child.wait(30)
