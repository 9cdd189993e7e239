"""Settings come from KASSA_* variables; a bad value is refused naming the variable and fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.environment import check_folders, env_example, unknown_variables
from common.errors import SettingsError
from common.schema import Limits
from common.settings import Settings, load_settings
from common.settings.secrets import secret_fields
from tests.helpers import repo_root, run_kassa


def test_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"KASSA_{name.upper()}", raising=False)
    settings = load_settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topic == "sales"
    assert settings.dead_letter_topic == "sales.dlq"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.data_dir == Path("data")
    assert settings.timezone == "UTC"
    assert settings.consumer_group == "kassa-stream"
    assert settings.partitions == 3


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASSA_TIMEZONE", "Europe/London")
    monkeypatch.setenv("KASSA_PARTITIONS", "6")
    settings = load_settings()
    assert settings.zone.key == "Europe/London"
    assert settings.partitions == 6


@pytest.mark.parametrize(
    ("variable", "value", "hint"),
    [
        ("KASSA_TIMEZONE", "Mars/Olympus", "Europe/London"),
        ("KASSA_PARTITIONS", "zero", "integer"),
        ("KASSA_PARTITIONS", "0", "greater than or equal to 1"),
        ("KASSA_KAFKA_BOOTSTRAP", "localhost", "127.0.0.1:9092"),
        ("KASSA_REDIS_URL", "http://x", "rediss?://"),
    ],
)
def test_bad_value_names_variable_and_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, hint: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert variable in str(raised.value)
    assert value in str(raised.value)
    assert hint in str(raised.value)


def test_cli_refuses_bad_settings_at_start_up() -> None:
    result = run_kassa(
        "services", "status", env={"KASSA_TIMEZONE": "Mars/Olympus", "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 2
    assert "KASSA_TIMEZONE='Mars/Olympus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_example_lists_every_setting_with_its_default() -> None:
    published = (repo_root() / ".env.example").read_text()
    assert published == env_example(), "regenerate .env.example with 'make env-example'"
    for name in Settings.model_fields:
        assert f"\nKASSA_{name.upper()}=" in published


def test_secret_files_are_read_under_an_env_file_made_from_env_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A kassa.env copied from .env.example holds an empty line for every secret
    (``KASSA_KAFKA_SASL_PASSWORD=``); the ``KASSA_<NAME>_FILE`` set beside it still gives
    the secret, as docker-compose.secrets.yml and the systemd credentials need."""
    for line in (repo_root() / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("KASSA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KASSA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KASSA_KAFKA_SASL_USERNAME", "kassa")
    monkeypatch.setenv("KASSA_REDIS_SENTINELS", "10.0.0.5:26379")
    expected = {name: f"{name}-value" for name in secret_fields(Settings)}
    expected["kafka_config"] = '{"client.rack": "eu-west-1a"}'
    for name, value in expected.items():
        (tmp_path / name).write_text(value + "\n")
        monkeypatch.setenv(f"KASSA_{name.upper()}_FILE", str(tmp_path / name))

    settings = load_settings()

    read = {name: getattr(settings, name).get_secret_value() for name in expected}
    assert read == expected


def test_a_misspelt_variable_is_named_with_the_closest_setting() -> None:
    warnings = unknown_variables({"KASSA_REDIS_ULR": "redis://x:1/0", "KASSA_TOPIC": "t"})
    assert warnings == [
        "KASSA_REDIS_ULR is not a kassa setting and is ignored; did you mean KASSA_REDIS_URL?"
    ]
    assert unknown_variables({"PATH": "/bin", "KASSA_TIMEZONE": "UTC"}) == []


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("redis://127.0.0.1:6379/abc", "'redis://127.0.0.1:6379/abc': its database 'abc' is not"),
        ("redis://127.0.0.1:6379/0?db=x", "its database 'x' is not a number"),
        ("redis://127.0.0.1:63a9/0", "'redis://127.0.0.1:63a9/0': its port is not a number"),
        ("redis:///0", "'redis:///0': it names no host"),
        ("redis://:pw/x@127.0.0.1/0", "'redis:***@127.0.0.1/0': its password holds a character"),
    ],
)
def test_a_redis_url_is_checked_down_to_its_database(url: str, hint: str) -> None:
    with pytest.raises(SettingsError, match="KASSA_REDIS_URL") as raised:
        load_settings(redis_url=url)
    assert hint in str(raised.value)
    for good in ("redis://127.0.0.1:6379", "rediss://u:p@cache:6380/15", "redis://h/3?db=3"):
        assert load_settings(redis_url=good).redis_url == good


REDIS_CONFLICTS = [
    ({"redis_url": "redis://kassa@h/0", "redis_username": "kassa"}, "names a user too"),
    ({"redis_url": "redis://:pw@h/0", "redis_password": "pw"}, "holds a password too"),
    ({"redis_ssl_ca_location": __file__}, "KASSA_REDIS_URL is redis:// (no TLS)"),
    ({"redis_url": "rediss://h/0", "redis_ssl_key_location": __file__}, "set both"),
    ({"redis_cluster": True, "redis_sentinels": "h:26379"}, "keep one"),
    ({"redis_cluster": True, "redis_url": "redis://h/3"}, "database 0 only"),
    ({"redis_sentinels": "h:26379,h2"}, "'h2' is not host:port"),
    ({"redis_url": "rediss://h/0", "redis_ssl_ca_location": "/no/such.pem"}, "is not a file"),
]


@pytest.mark.parametrize(("values", "hint"), REDIS_CONFLICTS)
def test_redis_settings_that_contradict_each_other_are_refused_naming_them(
    values: dict[str, object], hint: str
) -> None:
    with pytest.raises(SettingsError, match="KASSA_REDIS_") as raised:
        load_settings(**values)
    assert hint in str(raised.value)
    assert "pw" not in str(raised.value).replace("password", "")


def test_redis_logins_come_from_the_url_or_the_settings() -> None:
    assert load_settings().redis_user == "default"
    assert load_settings(redis_url="rediss://kassa:pw@h/0").redis_user == "kassa"
    settings = load_settings(redis_username="kassa", redis_sentinels="a:26379, b:26380")
    assert settings.redis_user == "kassa"
    assert settings.redis_sentinel_addresses == [("a", 26379), ("b", 26380)]


def test_a_folder_that_cannot_be_written_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = load_settings(state_dir=blocker / "state", data_dir=tmp_path / "data")
    check_folders(settings, ["data_dir"])
    assert (tmp_path / "data").is_dir()
    with pytest.raises(SettingsError) as raised:
        check_folders(settings, ["data_dir", "state_dir"])
    assert str(raised.value) == (
        f"KASSA_STATE_DIR={str(blocker / 'state')!r} is not a folder this user can write "
        "(Not a directory); create it for this user or point KASSA_STATE_DIR at one"
    )


def test_commands_warn_about_unknown_variables_and_refuse_unwritable_folders(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"PATH": "/usr/bin:/bin", "KASSA_STATE_DIR": str(blocker), "KASSA_TIMEZOEN": "UTC"}
    result = run_kassa("services", "status", env=env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert (
        "KASSA_TIMEZOEN is not a kassa setting and is ignored; did you mean KASSA_TIMEZONE?"
        in (lines[0])
    )
    assert lines[1:] == [
        f"kassa: error: KASSA_STATE_DIR={str(blocker)!r} is not a folder this user can write "
        "(File exists); create it for this user or point KASSA_STATE_DIR at one"
    ]


def test_replication_defaults_work_on_one_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REPLICATION_FACTOR", "MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(f"KASSA_{name}", raising=False)
    settings = load_settings()
    assert (settings.replication_factor, settings.min_insync_replicas) == (1, 1)


def test_min_insync_replicas_above_the_replication_factor_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASSA_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("KASSA_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "KASSA_MIN_INSYNC_REPLICAS=3 is larger than KASSA_REPLICATION_FACTOR=2" in str(
        raised.value
    )


def test_the_acceptance_rules_reach_every_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"KASSA_{name.upper()}", raising=False)
    assert load_settings().limits == Limits()  # the defaults are the schema's
    monkeypatch.setenv("KASSA_CURRENCY", "EUR")
    monkeypatch.setenv("KASSA_EVENT_TIME_MIN", "2010-12-01")
    monkeypatch.setenv("KASSA_EVENT_TIME_MAX_AHEAD_SECONDS", "600")

    limits = load_settings().limits

    assert limits.currency == "EUR"
    assert limits.earliest_event == datetime(2010, 12, 1, tzinfo=UTC)
    assert limits.max_event_ahead == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [
        ("KASSA_CURRENCY", "eur", "should match pattern"),
        ("KASSA_EVENT_TIME_MIN", "2000-01-01T00:00:00", "has no UTC offset"),
        ("KASSA_EVENT_TIME_MIN", "0001-01-01T00:00:00Z", "must be 0001-01-03"),
        ("KASSA_EVENT_TIME_MAX_AHEAD_SECONDS", "-1", "greater than or equal to 0"),
        ("KASSA_MAX_QUANTITY", "1000001", "less than or equal to 1000000"),
    ],
)
def test_acceptance_rules_outside_what_kassa_can_hold_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fix: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match=f"{name}='?{value}'?: .*{fix}"):
        load_settings()


def test_the_key_space_variable_of_an_earlier_kassa_is_still_read_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASSA_REDIS_NAMESPACE", "chain-a")
    assert load_settings().key_space == "chain-a"
    assert unknown_variables({"KASSA_REDIS_NAMESPACE": "chain-a"}) == [
        "KASSA_REDIS_NAMESPACE is now called KASSA_REDIS_KEY_SPACE; KASSA_REDIS_NAMESPACE is "
        "still read: rename it"
    ]
    monkeypatch.setenv("KASSA_REDIS_KEY_SPACE", "chain-b")
    assert load_settings().key_space == "chain-b"
    monkeypatch.setenv("KASSA_REDIS_NAMESPACE", "a b")
    monkeypatch.delenv("KASSA_REDIS_KEY_SPACE")
    with pytest.raises(SettingsError, match="KASSA_REDIS_NAMESPACE='a b'"):
        load_settings()


@pytest.mark.parametrize(
    ("value", "location"),
    [
        ("./data", Path("data")),
        ("/srv/kassa/data", Path("/srv/kassa/data")),
        ("file:///srv/kassa/data", Path("/srv/kassa/data")),
        ("s3://kassa/snapshots/", "s3://kassa/snapshots"),
        ("gs://kassa/snapshots", "gs://kassa/snapshots"),
        (
            "s3://kassa/p?endpoint_override=127.0.0.1:9000&scheme=http",
            "s3://kassa/p?endpoint_override=127.0.0.1:9000&scheme=http",
        ),
    ],
)
def test_the_data_location_is_a_folder_or_an_object_store_uri(
    monkeypatch: pytest.MonkeyPatch, value: str, location: object
) -> None:
    monkeypatch.setenv("KASSA_DATA_DIR", value)
    found = load_settings().data_dir
    assert found == location
    assert type(found) is type(location)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ftp://files.example/kassa", "the scheme 'ftp' is not one kassa writes to"),
        ("hdfs://namenode/kassa", "the scheme 'hdfs' is not one kassa writes to"),
        ("s3:///no-bucket", "it names no bucket"),
    ],
)
def test_a_data_location_kassa_cannot_write_is_refused_naming_the_accepted_forms(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("KASSA_DATA_DIR", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert f"KASSA_DATA_DIR={value!r}: {problem}" in str(refused.value)
    assert "s3://BUCKET/PREFIX" in str(refused.value)


def test_a_password_in_the_data_location_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASSA_DATA_DIR", "ftp://user:hunter2-secret@files.example/kassa")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "hunter2-secret" not in str(refused.value)
