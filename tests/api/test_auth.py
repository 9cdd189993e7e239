"""KASSA_API_TOKEN: with it set, every route but /health needs the token, as a Bearer token or
as an HTTP Basic password (the dashboard in a browser); without it, everything is open."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from pydantic import SecretStr

from common.errors import SettingsError
from common.settings import Settings, load_settings
from tests.api.helpers import (
    Answer,
    basic,
    call,
    chromium,
    fill_live_day,
    ranking_shown,
    serving,
    serving_child,
)
from tests.helpers import noon_zone, wait_until

TOKEN = secrets.token_urlsafe(32)
ZONE = noon_zone(datetime.now(UTC))
"""The business days' zone: about noon when the module loads (see tests.helpers.noon_zone)."""
GUARDED = [
    "/",
    "/static/app.js",
    "/docs",
    "/openapi.json",
    "/api/rankings",
    "/api/stores",
    "/api/totals",
    "/api/days",
    "/api/items/a",
    "/api/manifests/2026-11-20",
    "/no/such/route",
]
"""The dashboard, its files, the OpenAPI pages, every API route, and a path no route serves."""
SHOWN = ["/", "/static/app.js", "/docs", "/openapi.json", "/api/rankings", "/api/stores"]
"""Routes that answer 200 once authenticated."""


def assert_refused(answer: Answer, *, never_shown: tuple[str, ...] = (TOKEN,)) -> None:
    """A 401 with both challenges and a one-line problem quoting nothing it was given."""
    assert answer.status == 401, answer.text
    assert answer.headers.get_all("WWW-Authenticate") == [
        'Bearer realm="kassa"',
        'Basic realm="kassa", charset="UTF-8"',
    ]
    assert answer.headers.get_content_type() == "application/json"
    assert "\n" not in answer.text.strip()
    body = json.loads(answer.text)
    assert body["error"] == "unauthorized"
    assert "KASSA_API_TOKEN" in body["detail"]
    for secret in never_shown:
        assert secret not in answer.text
        assert secret not in str(answer.headers)


@pytest.fixture
def guarded_settings(settings: Settings, redis_client: redis.Redis) -> Settings:
    """The test's settings with :data:`TOKEN` as KASSA_API_TOKEN, and today's live ranking."""
    result = settings.model_copy(update={"timezone": ZONE, "api_token": SecretStr(TOKEN)})
    fill_live_day(redis_client, result.key_space, datetime.now(ZoneInfo(ZONE)).date())
    return result


@pytest.fixture
def guarded(guarded_settings: Settings) -> Iterator[str]:
    with serving(guarded_settings, probe_kafka=False) as base:
        yield base


@pytest.mark.parametrize("path", GUARDED)
def test_without_credentials_every_route_but_health_is_a_one_line_401_with_both_challenges(
    guarded: str, path: str
) -> None:
    answer = call(guarded + path)
    assert_refused(answer)
    assert "needs its KASSA_API_TOKEN" in json.loads(answer.text)["detail"]


def test_health_needs_no_credentials(guarded: str) -> None:
    answer = call(f"{guarded}/health")
    assert answer.status == 200, answer.text
    assert json.loads(answer.text)["status"] == "ok"


def test_a_wrong_bearer_token_or_basic_password_is_refused_and_never_echoed(
    guarded: str,
) -> None:
    wrong = secrets.token_urlsafe(32)
    presented = [
        f"Bearer {wrong}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        basic("kassa", wrong),
        basic(TOKEN, wrong),
        basic("kassa", TOKEN.upper()),
        "Basic " + base64.b64encode(TOKEN.encode()).decode(),  # no user:password
        f"Basic {wrong}",  # not base64
        f"Digest {TOKEN}",
        TOKEN,  # no scheme
    ]
    for authorization in presented:
        for path in ("/api/rankings", "/"):
            answer = call(guarded + path, authorization)
            assert_refused(answer, never_shown=(TOKEN, wrong))


def test_the_token_as_bearer_or_as_basic_password_with_any_user_opens_every_route(
    guarded: str,
) -> None:
    for authorization in (f"Bearer {TOKEN}", basic("kassa", TOKEN), basic("", TOKEN)):
        for path in SHOWN:
            answer = call(guarded + path, authorization)
            assert answer.status == 200, (authorization, path, answer.text)
        ranking = json.loads(call(f"{guarded}/api/rankings", authorization).text)
        assert [(i["sku"], i["units"]) for i in ranking["items"]] == [("a", 2), ("b", 1)]


def test_the_dashboard_opened_with_the_token_in_a_browser_shows_its_figures(
    guarded: str,
) -> None:
    # The password in the address answers the server's Basic challenge as a typed one does,
    # and the browser keeps it for the origin; the page's URL then holds it, which a fetch of
    # a relative path refuses (so the page fetches origin-relative URLs).
    signed_in = guarded.replace("http://", f"http://anyone:{TOKEN}@")
    with chromium() as chrome:
        chrome.get(f"{signed_in}/")
        shown = [("a", 2), ("b", 1)]
        wait_until(lambda: ranking_shown(chrome) == shown, 30, "the page to show the ranking")
        # what the page's poll (every second) does, with and without the kept password
        fetch = "return fetch(new URL('/api/rankings', location.origin), %s).then((r) => r.status);"
        assert chrome.execute_script(fetch % "{cache: 'no-store'}") == 200
        assert chrome.execute_script(fetch % "{cache: 'no-store', credentials: 'omit'}") == 401
        logged = chrome.get_log("browser")
    errors = [e for e in logged if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert errors == []


def test_kassa_serve_reads_the_token_from_kassa_api_token_file(
    guarded_settings: Settings, tmp_path: Path
) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")  # as `echo` writes it
    unset = guarded_settings.model_copy(update={"api_token": None})
    with serving_child(unset, tmp_path, KASSA_API_TOKEN_FILE=str(token_file)) as base:
        assert_refused(call(f"{base}/api/rankings"))
        assert call(f"{base}/api/rankings", f"Bearer {TOKEN}").status == 200
        assert call(f"{base}/", basic("kassa", TOKEN)).status == 200
        assert call(f"{base}/health").status == 200
    log = (tmp_path / "serve.log").read_text()
    assert "every route but /health needs KASSA_API_TOKEN" in log
    assert TOKEN not in log


def test_without_a_token_everything_stays_open(guarded_settings: Settings, tmp_path: Path) -> None:
    # an empty KASSA_API_TOKEN, as .env.example has it, is no token
    unset = guarded_settings.model_copy(update={"api_token": None})
    with serving_child(unset, tmp_path, KASSA_API_TOKEN="") as base:
        for path in [*SHOWN, "/health"]:
            for authorization in (None, f"Bearer {secrets.token_urlsafe(8)}", basic("a", "b")):
                answer = call(base + path, authorization)
                assert answer.status == 200, (path, authorization, answer.text)
                assert "WWW-Authenticate" not in answer.headers
        assert call(f"{base}/no/such/route").status == 404


@pytest.mark.parametrize("token", ["two words", "caf\u00e9", "tab\there"])
def test_a_token_an_http_header_cannot_carry_is_refused_at_start_without_being_shown(
    token: str,
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(api_token=token)
    message = str(refused.value)
    assert "KASSA_API_TOKEN=" in message
    assert "printable ASCII" in message
    assert token not in message
