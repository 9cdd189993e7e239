"""Every Kafka client's configuration comes from one place, and librdkafka and Quix take it
for each security protocol and login kassa offers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from common.errors import SettingsError
from common.redaction import HIDDEN, redacted_config
from common.settings import Settings, load_settings
from storage.kafka.config import client_config, connection, quix_connection

OAUTH = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "OAUTHBEARER",
    "kafka_oauth_token_url": "https://login.example.com/oauth2/token",
    "kafka_oauth_client_id": "kassa",
    "kafka_oauth_client_secret": SecretStr("oauth-secret-41"),
    "kafka_oauth_scope": "kafka",
}
SCRAM = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "kassa",
    "kafka_sasl_password": SecretStr("scram-secret-42"),
}


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A file where a PEM file is expected (librdkafka reads it only when it connects)."""
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


@pytest.mark.parametrize(
    "login",
    [
        {},
        {"kafka_security_protocol": "SSL"},
        SCRAM,
        {**SCRAM, "kafka_security_protocol": "SASL_PLAINTEXT"},
        {**SCRAM, "kafka_sasl_mechanism": "PLAIN"},
        OAUTH,
    ],
    ids=["plaintext", "ssl", "scram", "sasl-plaintext", "plain", "oauthbearer-oidc"],
)
def test_librdkafka_and_quix_take_the_connection_of_each_login(login: dict[str, object]) -> None:
    settings = Settings(**login)  # type: ignore[arg-type]
    config = connection(settings)
    assert config["security.protocol"] == settings.kafka_security_protocol
    Producer({**config, "client.id": "config-test"}).flush(0)  # refuses unknown properties
    typed, extra = quix_connection(settings)
    given = {**typed.as_librdkafka_dict(), **extra}
    assert {name: str(value).lower() for name, value in given.items()} == {
        name: str(value).lower() for name, value in config.items()
    }  # Quix writes the protocol in lower case


def test_the_oauthbearer_login_is_librdkafkas_oidc_method() -> None:
    config = connection(Settings(**OAUTH))  # type: ignore[arg-type]
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.client.secret"] == "oauth-secret-41"
    typed, extra = quix_connection(Settings(**OAUTH))  # type: ignore[arg-type]
    assert {**typed.as_librdkafka_dict(), **extra}["sasl.oauthbearer.method"] == "oidc"


def test_properties_quix_has_no_field_for_reach_its_clients_as_extra_configuration() -> None:
    extra_properties = json.dumps({"client.rack": "eu-west-1a", "socket.keepalive.enable": True})
    _, extra = quix_connection(Settings(kafka_config=SecretStr(extra_properties)))
    assert extra == {"client.rack": "eu-west-1a", "socket.keepalive.enable": True}


def test_tls_files_and_extra_properties_reach_every_client(pem: Path) -> None:
    settings = Settings(
        **SCRAM,  # type: ignore[arg-type]
        kafka_ssl_ca_location=pem,
        kafka_config=SecretStr(json.dumps({"client.rack": "eu-west-1a"})),
    )
    config = client_config(settings, {"group.id": "g"})
    assert config["ssl.ca.location"] == str(pem)
    assert config["client.rack"] == "eu-west-1a"
    assert config["group.id"] == "g"


def test_a_connection_shown_as_text_hides_every_secret() -> None:
    settings = Settings(
        **SCRAM,  # type: ignore[arg-type]
        kafka_config=SecretStr(json.dumps({"sasl.oauthbearer.config": "principal=x"})),
    )
    shown = json.dumps(redacted_config(connection(settings)))
    assert "scram-secret-42" not in shown
    assert "principal=x" not in shown
    assert HIDDEN in shown
    assert "kassa" in shown  # the user name is no secret


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"KASSA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KASSA_KAFKA_SASL_USERNAME and"),
        ({"KASSA_KAFKA_SASL_USERNAME": "kassa"}, "sends no login"),
        ({"KASSA_KAFKA_SSL_CA_LOCATION": "/no/such/ca.pem"}, "is not a file"),
        ({"KASSA_KAFKA_CONFIG": "{not json"}, "is not JSON"),
        ({"KASSA_KAFKA_CONFIG": '{"sasl.password": "x"}'}, "use KASSA_KAFKA_SASL_PASSWORD"),
        ({"KASSA_KAFKA_CONFIG": '{"group.id": "x"}'}, "kassa's clients set themselves"),
        (
            {
                "KASSA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KASSA_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            },
            "KASSA_KAFKA_OAUTH_TOKEN_URL",
        ),
        (
            {
                "KASSA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KASSA_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KASSA_KAFKA_OAUTH_CALLBACK": "no_such_module_here:token",
            },
            "cannot import 'no_such_module_here:token'",
        ),
        (
            {
                "KASSA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KASSA_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KASSA_KAFKA_OAUTH_CALLBACK": "tests.security.oauth_token:unsecured_token",
                "KASSA_KAFKA_OAUTH_TOKEN_URL": "https://login.example.com/token",
            },
            "keep one of them",
        ),
    ],
)
def test_a_connection_that_cannot_work_is_refused_at_start_up_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_a_password_comes_from_its_file_and_never_from_both_places(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file-43\n")
    monkeypatch.setenv("KASSA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KASSA_KAFKA_SASL_USERNAME", "kassa")
    monkeypatch.setenv("KASSA_KAFKA_SASL_PASSWORD_FILE", str(secret))
    assert connection(load_settings())["sasl.password"] == "from-a-file-43"
    monkeypatch.setenv("KASSA_KAFKA_SASL_PASSWORD", "from-the-environment")
    with pytest.raises(SettingsError, match="keep one") as refused:
        load_settings()
    assert "from-a-file-43" not in str(refused.value)
    assert "from-the-environment" not in str(refused.value)
