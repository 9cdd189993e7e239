"""``kassa top``: every bad argument and every reason for having no ranking is a clear error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

# In process, not run_kassa: the parser's errors are asserted as the SystemExit they raise,
# and a child process per case would spend seconds importing kassa for a one-line answer.
from cli.main import main as kassa
from common.settings import Settings
from storage import keys
from storage.daily import DaySnapshot, replace_day
from tests.api.helpers import fill_live_day
from tests.helpers import free_port, noon_zone, settings_env

ZONE = noon_zone(datetime.now(UTC))
"""The business days' zone: about noon there when the module loads, so no day ends during
these tests whatever the hour (``kassa top`` reads today's ranking by default)."""
TODAY = datetime.now(ZoneInfo(ZONE)).date()


@pytest.fixture
def environment(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    settings = settings.model_copy(update={"timezone": ZONE})
    fill_live_day(redis_client, settings.key_space, TODAY)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    return settings


ARGPARSE_ERRORS = [
    (["--day", "21-11-2026"], "YYYY-MM-DD"),
    (["--from", "2026-11-01", "--to", "soon"], "YYYY-MM-DD"),
    (["-n", "0"], "not a positive whole number"),
    (["-n", "1001"], "1 to 1000"),
    (["--by", "profit"], "choose from 'units', 'revenue'"),
    (["--source", "weekly"], "choose from 'live', 'daily'"),
    (["--day", "2026-11-01", "--from", "2026-11-01"], "not allowed with argument --day"),
]


@pytest.mark.parametrize(("args", "message"), ARGPARSE_ERRORS)
def test_a_malformed_argument_is_refused_by_the_parser(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_status:
        kassa(["top", *args])
    assert exit_status.value.code == 2
    assert message in capsys.readouterr().err


KASSA_ERRORS = [
    (["--from", "2026-11-01"], 2, "--from and --to go together"),
    (["--to", "2026-11-01"], 2, "--from and --to go together"),
    (["--from", "2026-11-02", "--to", "2026-11-01"], 2, "is after"),
    (["--from", "2024-01-01", "--to", "2026-11-01"], 2, "at most 366 days"),
    (["--day", str(TODAY - timedelta(days=1))], 1, "no live figures"),
    (["--store", "west"], 1, "known stores: north, south (list them with `kassa top --stores"),
    (["--source", "daily", "--day", str(TODAY)], 1, f"kassa daily run --day {TODAY}"),
    (["--day", str(TODAY - timedelta(days=40))], 1, "read the Parquet snapshot"),
]


@pytest.mark.parametrize(("args", "status", "message"), KASSA_ERRORS)
def test_no_ranking_says_why_and_what_to_do(
    environment: Settings,
    args: list[str],
    status: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert kassa(["top", *args]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.startswith("kassa: error: ")


def test_stores_lists_the_known_stores(
    environment: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kassa(["top", "--stores"]) == 0
    assert capsys.readouterr().out.split() == ["north", "south"]
    assert kassa(["top", "--stores", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ["north", "south"]


def test_the_table_names_the_query(
    environment: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kassa(["top", "--by", "revenue", "--store", "north"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"live ranking by revenue for {TODAY} (store north)"
    assert lines[2].split() == ["1", "a", "2", "2.0000"]


def test_an_unreachable_redis_is_exit_status_3(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    for name, value in settings_env(broken).items():
        monkeypatch.setenv(name, value)
    assert kassa(["top", "--from", str(TODAY), "--to", str(TODAY)]) == 3
    assert "from Redis at KASSA_REDIS_URL=" in capsys.readouterr().err


EVIL = "\x1b]0;PWNED\x07\x1b[41m"
"""What a register could send as an item name or store id: retitle and colour the terminal."""


def test_control_characters_in_names_and_stores_reach_the_terminal_escaped(
    settings: Settings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    totals = {"units": 2, "units_sold": 2, "units_returned": 0, "revenue": 20000, "checkouts": 1}
    snapshot = DaySnapshot(
        items={"a\nb": (2, 2, 0, 20000, 1, 0)},
        totals={**totals, "lines": 1},
        store_items={f"shop{EVIL}": {"a\nb": (2, 2, 0, 20000, 1, 0)}},
        store_totals={f"shop{EVIL}": {**totals, "lines": 1}},
    )
    expire_at = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    replace_day(redis_client, settings.key_space, "live", TODAY, snapshot, expire_at=expire_at)
    redis_client.hset(keys.names_key(settings.key_space), "a\nb", f"Soap{EVIL}\nline two")
    for name, value in settings_env(settings.model_copy(update={"timezone": ZONE})).items():
        monkeypatch.setenv(name, value)

    assert kassa(["top"]) == 0
    assert kassa(["top", "--stores"]) == 0
    assert kassa(["top", "--json"]) == 0
    assert kassa(["top", "--store", "nowhere"]) == 1
    out, err = capsys.readouterr()
    for text in (out, err):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)
    assert "Soap\\x1b]0;PWNED\\x07\\x1b[41m\\x0aline two" in out  # one row, visibly escaped
    assert "shop\\x1b]0;PWNED" in out and "shop\\x1b]0;PWNED" in err
    assert json.loads(out.splitlines()[-1])[0]["name"] == f"Soap{EVIL}\nline two"
