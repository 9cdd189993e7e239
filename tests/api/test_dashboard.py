"""The dashboard in Debian's headless Chromium: top items from Redis, live updates, store switch.

Needs Chromium (see :func:`tests.api.helpers.chromium`). Screenshots are saved under
``tmp_path`` and copied to ``KASSA_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the
repository).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from common.schema import Checkout
from common.settings import Settings
from storage.rankings import read_ranking
from tests.api.helpers import chromium, fill_live_day, get, ranking_shown, serving
from tests.helpers import noon_zone, repo_root, wait_until
from tests.jobs.daily.helpers import checkout, produce
from tests.jobs.stream.helpers import caught_up, start_stream

ARTIFACTS = Path(os.environ.get("KASSA_TEST_ARTIFACTS") or repo_root() / "test-artifacts")
DESKTOP = (1280, 900)

ZONE = noon_zone(datetime.now(UTC))
"""The business days' zone: about noon when the module loads (see tests.helpers.noon_zone)."""


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as chrome:
        yield chrome


def _shows(chrome: webdriver.Chrome, expected: list[tuple[str, int]]) -> Callable[[], bool]:
    return lambda: ranking_shown(chrome) == expected


def _sale(number: int, store: str, sku: str, quantity: int) -> Checkout:
    when = datetime.now(UTC) - timedelta(seconds=5)
    return checkout(f"ui-{number}", when, [(sku, quantity, "1.25")], store_id=store)


def _screenshot(chrome: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert chrome.save_screenshot(str(path)), f"no screenshot written to {path}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


def test_the_dashboard_shows_live_top_items_updates_and_switches_store(
    settings: Settings, redis_client: redis.Redis, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # business days in a zone where it is about noon: no day ends during the test
    settings = settings.model_copy(update={"metrics_port": 0, "timezone": ZONE})
    produce(
        settings,
        [
            _sale(1, "north", "apple", 5),
            _sale(2, "north", "bread", 3),
            _sale(3, "south", "milk", 7),
            _sale(4, "south", "eggs", 2),
        ],
    )
    stream = start_stream(settings, tmp_path / "stream.log")
    try:
        wait_until(caught_up(redis_client, settings), 90, "the stream job to count the backlog")
        with serving(settings) as base:
            browser.get(f"{base}/")
            chain = [("milk", 7), ("apple", 5), ("bread", 3), ("eggs", 2)]
            wait_until(_shows(browser, chain), 30, f"the page to show {chain}")
            day = datetime.now(ZoneInfo(ZONE)).date()
            from_redis = [
                (i.sku, i.units)
                for i in read_ranking(redis_client, settings.key_space, "live", day)
            ]
            assert from_redis == chain
            status, body = get(f"{base}/api/rankings")
            assert status == 200
            assert [(i["sku"], i["units"]) for i in body["items"]] == chain
            assert browser.execute_script("return typeof window.Chart") == "function"

            produce(settings, [_sale(5, "north", "cake", 20)])
            produced_at = time.monotonic()
            updated = [("cake", 20), *chain]
            wait_until(_shows(browser, updated), 15, "the page to show the new checkout")
            delay = time.monotonic() - produced_at
            assert delay < 10, f"the page took {delay:.1f} s to show a new checkout"

            Select(browser.find_element(By.ID, "store")).select_by_value("south")
            wait_until(_shows(browser, [("milk", 7), ("eggs", 2)]), 15, "the store switch")
            assert "store south" in browser.find_element(By.ID, "ranking-title").text
            assert "store=south" in browser.current_url
            phone = _screenshot(browser, tmp_path, "dashboard-phone.png")

            Select(browser.find_element(By.ID, "store")).select_by_value("")
            wait_until(_shows(browser, updated), 15, "the switch back to all stores")
            browser.set_window_size(*DESKTOP)
            time.sleep(1.5)  # let the charts redraw at the new size before the picture
            desktop = _screenshot(browser, tmp_path, "dashboard.png")
            assert phone.stat().st_size > 10_000
            assert desktop.stat().st_size > 10_000
    finally:
        stream.send_signal(signal.SIGTERM)
        assert stream.wait(60) == 0, (tmp_path / "stream.log").read_text()[-3000:]


@pytest.mark.parametrize("day", ["garbage", "2026-02-30", "99999-01-01"])
def test_a_day_in_the_url_that_is_no_date_falls_back_to_today_without_a_script_error(
    settings: Settings, redis_client: redis.Redis, browser: webdriver.Chrome, day: str
) -> None:
    settings = settings.model_copy(update={"timezone": ZONE})
    fill_live_day(redis_client, settings.key_space, datetime.now(ZoneInfo(ZONE)).date())
    with serving(settings, probe_kafka=False) as base:
        browser.get(f"{base}/?day={day}")
        wait_until(_shows(browser, [("a", 2), ("b", 1)]), 30, "today's live ranking")
        logged = browser.get_log("browser")
    errors = [e for e in logged if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert errors == []
