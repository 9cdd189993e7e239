"""What ``kassa services up --secure`` puts around the local Kafka and Redis: a CA, broker
and Redis certificates, SCRAM users and the ACLs of the ``kassa`` user, Redis ACL users and
the rules of the ``kassa`` one.

Everything lives in ``<KASSA_STATE_DIR>/secure`` (``SECURE_FOLDER``), made once and reused
(private files mode 0600):

- ``ca.pem``/``ca-key.pem``: a CA made here; ``broker.pem``: a broker key and certificate
  for the cluster's host (its only name: a client that reaches the broker by another name is
  refused, as with a real cluster), signed by that CA. Made with ``cryptography``.
- ``admin.password``, ``kassa.password``: the SCRAM-SHA-512 passwords of ``admin`` (the
  brokers' own user and a super user) and ``kassa`` (the user kassa's programs run as, holding
  only :data:`KASSA_ACLS`). Both users are created when the storage is formatted.
- ``redis.pem``/``redis-key.pem``: Redis's certificate for its host, signed by the same CA;
  ``redis-admin.password``, ``redis-kassa.password``: the passwords of Redis's ACL users
  ``admin`` (every command and key) and ``kassa`` (only :func:`kassa_redis_rules`); Redis's
  default user is off.
- ``kassa.env``: the ``KASSA_KAFKA_*`` and ``KASSA_REDIS_*`` settings that connect as
  ``kassa`` (its passwords through ``KASSA_KAFKA_SASL_PASSWORD_FILE`` and
  ``KASSA_REDIS_PASSWORD_FILE``): ``set -a; . <that file>; set +a``.
- ``admin.properties``: the admin login for Kafka's own Java tools (``--command-config``).

The controller listener stays PLAINTEXT on the host (KRaft controllers cannot check SCRAM
logins, which live in the metadata they serve); its principal ``ANONYMOUS`` is a super user
so that brokers can register. Every client listener is SASL_SSL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from common.settings import Settings
from services.exceptions import ServiceError
from services.redis import AclUser, RedisTls
from storage import keys
from storage.kafka.reading import READER_GROUP
from storage.kafka.topics import await_visible

SECURE_FOLDER: Final = "secure"
MECHANISM: Final = "SCRAM-SHA-512"
ADMIN_USER: Final = "admin"
KASSA_USER: Final = "kassa"
CERTIFICATE_DAYS: Final = 825
_PRIVATE = 0o600


@dataclass(frozen=True)
class Grant:
    """One ACL the ``kassa`` user needs: ``operation`` on a resource, and which of kassa's
    programs need it (for docs/security.md)."""

    resource: ResourceType
    name: str
    operation: AclOperation
    needed_by: str

    @property
    def kind(self) -> str:
        """The resource type as docs/security.md names it (``Topic``, ``TransactionalId``)."""
        name: str = self.resource.name
        return name.title().replace("_", "")

    def binding(self, user: str) -> AclBinding:
        """The ACL allowing ``user`` this grant from any host."""
        return AclBinding(
            self.resource,
            self.name,
            ResourcePatternType.LITERAL,
            f"User:{user}",
            "*",
            self.operation,
            AclPermissionType.ALLOW,
        )


def kassa_grants(settings: Settings) -> list[Grant]:
    """Every ACL kassa's programs need, and nothing more, for the configured topics and group.

    Creating the topics is not among them: ``kassa services up --secure`` creates them as
    ``admin`` (a cluster's operators usually do); ``kassa topics create`` as ``kassa`` needs
    CREATE on both topics (docs/security.md).
    """
    topic, dead, group = settings.topic, settings.dead_letter_topic, settings.consumer_group
    topic_type, group_type = ResourceType.TOPIC, ResourceType.GROUP
    # READ and WRITE imply DESCRIBE (metadata, offsets), so DESCRIBE is not listed
    return [
        Grant(topic_type, topic, AclOperation.WRITE, "kassa produce (idempotent)"),
        Grant(topic_type, topic, AclOperation.READ, "kassa stream, kassa daily, kassa serve"),
        Grant(
            topic_type,
            topic,
            AclOperation.DESCRIBE_CONFIGS,
            "kassa stream (Quix checks the topic), kassa topics describe",
        ),
        Grant(
            topic_type,
            dead,
            AclOperation.WRITE,
            "kassa stream (dead letters), kassa dead-letters replay (keeps the refused)",
        ),
        Grant(topic_type, dead, AclOperation.READ, "kassa dead-letters list, replay"),
        Grant(topic_type, dead, AclOperation.DESCRIBE_CONFIGS, "kassa topics describe"),
        Grant(group_type, group, AclOperation.READ, "kassa stream (joins, commits); the lag"),
        Grant(group_type, READER_GROUP, AclOperation.DESCRIBE, "kassa daily (reads, never joins)"),
        Grant(
            group_type,
            settings.replay_group,
            AclOperation.READ,
            "kassa dead-letters replay (commits in its transaction), list",
        ),
        Grant(
            ResourceType.TRANSACTIONAL_ID,
            settings.replay_transactional_id,
            AclOperation.WRITE,
            "kassa dead-letters replay (one transaction per batch)",
        ),
    ]


@dataclass(frozen=True)
class RedisRule:
    """One ACL rule of Redis's ``kassa`` user, and why kassa needs it (for docs/security.md)."""

    rule: str
    why: str


def kassa_redis_rules() -> list[RedisRule]:
    """The ACL rules of the Redis user kassa runs as, in order: its keys, and the command
    categories it uses without the dangerous ones (a later rule overrides an earlier one)."""
    return [
        RedisRule(f"~{keys.PREFIX}:*", "every key kassa reads or writes (storage/keys.py)"),
        RedisRule("resetchannels", "no Pub/Sub channel: kassa publishes nothing"),
        RedisRule("-@all", "no command but those below"),
        RedisRule("+@read", "reading figures, rankings and watermarks (every kassa command)"),
        RedisRule("+@write", "writing figures (the stream job, the daily job, rebuild)"),
        RedisRule("+@scripting", "the Lua scripts: a stream batch, rebuild, combined rankings"),
        RedisRule("+@transaction", "MULTI/EXEC/WATCH: the daily job's swap, watermark reads"),
        RedisRule("+@connection", "PING, SELECT (the URL's database), HELLO, CLIENT SETINFO"),
        RedisRule("-@dangerous", "no FLUSHDB, FLUSHALL, SHUTDOWN, CONFIG, KEYS, DEBUG, ..."),
        RedisRule("+info", "maxmemory-policy (the stream job refuses an evicting Redis)"),
    ]


REDIS_ADMIN_RULES: Final = ("~*", "&*", "+@all")


@dataclass(frozen=True)
class SecureFiles:
    """The files of one secured local cluster (see the module)."""

    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust (KASSA_KAFKA_SSL_CA_LOCATION)."""
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def broker(self) -> Path:
        """The brokers' private key and certificate chain (a PEM key store)."""
        return self.folder / "broker.pem"

    @property
    def client_env(self) -> Path:
        """The settings that connect as ``kassa``."""
        return self.folder / "kassa.env"

    @property
    def admin_properties(self) -> Path:
        """The admin login for Kafka's Java tools."""
        return self.folder / "admin.properties"

    def password_file(self, user: str) -> Path:
        """The file holding ``user``'s SCRAM password."""
        return self.folder / f"{user}.password"

    def password(self, user: str) -> str:
        """``user``'s SCRAM password."""
        path = self.password_file(user)
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            msg = (
                f"{path} is missing, so the secured local services cannot be reached; run "
                "'kassa services up --secure' (it makes what is missing)"
            )
            raise ServiceError(msg) from None

    @property
    def redis_tls(self) -> RedisTls:
        """Redis's certificate and key, and the CA (:meth:`make_redis` makes them)."""
        return RedisTls(self.folder / "redis.pem", self.folder / "redis-key.pem", self.ca)

    @property
    def redis_made(self) -> bool:
        """Whether Redis's certificate was made (``up --secure`` secured the local Redis)."""
        return self.redis_tls.certificate.exists()

    def redis_users(self) -> tuple[AclUser, ...]:
        """Redis's users: ``admin`` (everything) and ``kassa`` (:func:`kassa_redis_rules`)."""
        kassa = tuple(rule.rule for rule in kassa_redis_rules())
        return (
            AclUser(ADMIN_USER, SecretStr(self.password(f"redis-{ADMIN_USER}")), REDIS_ADMIN_RULES),
            AclUser(KASSA_USER, SecretStr(self.password(f"redis-{KASSA_USER}")), kassa),
        )

    def make_redis(self, host: str, url: str) -> None:
        """Make what Redis lacks (its certificate for ``host``, its users' passwords) and
        add the settings that reach it at ``url`` as ``kassa`` to :attr:`client_env`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        if not self.ca.exists():
            make_ca(self.ca, self.ca_key)
        tls = self.redis_tls
        if not tls.certificate.exists():
            key, certificate = issue_certificate(self.ca, self.ca_key, host)
            _write_private(tls.key, key.decode())
            tls.certificate.write_bytes(certificate)
        for user in (ADMIN_USER, KASSA_USER):
            if not self.password_file(f"redis-{user}").exists():
                _write_private(
                    self.password_file(f"redis-{user}"), secrets.token_urlsafe(24) + "\n"
                )
        self._write_client_env("KASSA_REDIS_", self.redis_client_settings(url))

    def _write_client_env(self, prefix: str, variables: dict[str, str]) -> None:
        """Replace the lines of :attr:`client_env` whose variables start with ``prefix`` by
        ``variables`` (the other service's lines stay)."""
        kept = []
        if self.client_env.exists():
            kept = [
                line
                for line in self.client_env.read_text().splitlines()
                if line and not line.startswith(prefix)
            ]
        added = [f"{name}={value}" for name, value in variables.items()]
        self.client_env.write_text("".join(f"{line}\n" for line in [*kept, *added]))

    def redis_client_settings(self, url: str, user: str = KASSA_USER) -> dict[str, str]:
        """The ``KASSA_REDIS_*`` variables that reach the Redis at ``url`` (its host, port and
        database) with TLS, as ``user`` (the password by file)."""
        return {
            "KASSA_REDIS_URL": secured_redis_url(url),
            "KASSA_REDIS_USERNAME": user,
            "KASSA_REDIS_PASSWORD_FILE": str(self.password_file(f"redis-{user}")),
            "KASSA_REDIS_SSL_CA_LOCATION": str(self.ca),
        }

    @property
    def made(self) -> bool:
        """Whether the files were made (``up --secure`` ran here)."""
        return self.client_env.exists()

    def make(self, host: str, bootstrap: str) -> None:
        """Make whatever is missing: CA, broker certificate for ``host``, passwords, and the
        client files for ``bootstrap``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        if not self.ca.exists():
            make_ca(self.ca, self.ca_key)
        if not self.broker.exists():
            _write_broker(self.broker, self.ca, self.ca_key, host)
        for user in (ADMIN_USER, KASSA_USER):
            if not self.password_file(user).exists():
                _write_private(self.password_file(user), secrets.token_urlsafe(24) + "\n")
        _write_private(self.admin_properties, self._java_client_properties(ADMIN_USER))
        self._write_client_env("KASSA_KAFKA_", self.client_settings(bootstrap))

    def client_settings(self, bootstrap: str, user: str = KASSA_USER) -> dict[str, str]:
        """The ``KASSA_*`` variables that connect to ``bootstrap`` as ``user`` (the password
        by file)."""
        return {
            "KASSA_KAFKA_BOOTSTRAP": bootstrap,
            "KASSA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KASSA_KAFKA_SASL_MECHANISM": MECHANISM,
            "KASSA_KAFKA_SASL_USERNAME": user,
            "KASSA_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "KASSA_KAFKA_SSL_CA_LOCATION": str(self.ca),
        }

    def admin_settings(self, settings: Settings, bootstrap: str) -> Settings:
        """``settings`` logged in to ``bootstrap`` as ``admin`` (to create the topics)."""
        return self.user_settings(settings, bootstrap, ADMIN_USER)

    def user_settings(self, settings: Settings, bootstrap: str, user: str = KASSA_USER) -> Settings:
        """``settings`` logged in to ``bootstrap`` as ``user`` (by default ``kassa``)."""
        return settings.model_copy(
            update={
                "kafka_bootstrap": bootstrap,
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": MECHANISM,
                "kafka_sasl_username": user,
                "kafka_sasl_password": SecretStr(self.password(user)),
                "kafka_ssl_ca_location": self.ca,
            }
        )

    def admin_config(self) -> dict[str, Any]:
        """librdkafka settings (without the address) that log in as ``admin``."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": ADMIN_USER,
            "sasl.password": self.password(ADMIN_USER),
            "ssl.ca.location": str(self.ca),
        }

    def broker_properties(self) -> list[str]:
        """The lines of ``server.properties`` that secure a node's client listener."""
        return [
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config="
            + _jaas(ADMIN_USER, self.password(ADMIN_USER)),
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.broker}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN_USER};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found=false",
        ]

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating both SCRAM users."""
        return [
            argument
            for user in (ADMIN_USER, KASSA_USER)
            for argument in (
                "--add-scram",
                f"{MECHANISM}=[name={user},password={self.password(user)}]",
            )
        ]

    def grant(self, bootstrap: str, settings: Settings, timeout: float = 30.0) -> None:
        """Give ``kassa`` the ACLs it needs on the cluster at ``bootstrap`` (as ``admin``), and
        wait until every broker lets it see the topics (which must exist): each broker learns
        of new ACLs a moment after the controller, and refuses until then."""
        admin = AdminClient({**self.admin_config(), "bootstrap.servers": bootstrap})
        bindings = [grant.binding(KASSA_USER) for grant in kassa_grants(settings)]
        for binding, future in admin.create_acls(bindings, request_timeout=timeout).items():
            try:
                future.result()
            except Exception as exc:
                msg = f"could not grant {binding} to user {KASSA_USER!r}: {exc}"
                raise ServiceError(msg) from exc
        topics = [settings.topic, settings.dead_letter_topic]
        await_visible(self.user_settings(settings, bootstrap), topics, timeout)

    def _java_client_properties(self, user: str) -> str:
        return "".join(
            f"{line}\n"
            for line in (
                "security.protocol=SASL_SSL",
                f"sasl.mechanism={MECHANISM}",
                "sasl.jaas.config=" + _jaas(user, self.password(user)),
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca}",
            )
        )


def secured_redis_url(url: str) -> str:
    """``url`` as ``rediss://`` without a login: the same host, port and database."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(scheme="rediss", netloc=host))


def _jaas(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user only from its first byte."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(_PRIVATE)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kassa local services"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity() -> Iterator[dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    yield now - dt.timedelta(minutes=5)
    yield now + dt.timedelta(days=CERTIFICATE_DAYS)


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(certificate: Path, key_file: Path) -> None:
    """Write a new CA's certificate and (private) key to these files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_before, not_after = _validity()
    # a name of its own: a client trusting another kassa CA finds no issuer, not a bad one
    name = _name(f"kassa local CA {secrets.token_hex(4)}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(key_file, _pkcs8(key).decode())
    certificate.write_bytes(ca.public_bytes(serialization.Encoding.PEM))


def issue_certificate(ca_file: Path, ca_key_file: Path, host: str) -> tuple[bytes, bytes]:
    """A new server key and certificate for ``host`` (an IP address or a DNS name, its only
    subject alternative name), signed by the CA in ``ca_file``: (key PEM, certificate PEM)."""
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    if not isinstance(ca_key, rsa.RSAPrivateKey):
        msg = f"{ca_key_file} holds no RSA key; delete the folder {ca_file.parent} and run up again"
        raise ServiceError(msg)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    not_before, not_after = _validity()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pkcs8(key), certificate.public_bytes(serialization.Encoding.PEM)


def _write_broker(path: Path, ca_file: Path, ca_key_file: Path, host: str) -> None:
    key, certificate = issue_certificate(ca_file, ca_key_file, host)
    _write_private(path, (key + certificate + ca_file.read_bytes()).decode())
