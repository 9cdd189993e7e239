"""A token provider for KASSA_KAFKA_OAUTH_CALLBACK in the tests: an unsecured JWT (``alg:
none``) for the principal ``sasl.oauthbearer.config`` names (``sub=<name>``), which a broker
with Kafka's unsecured OAUTHBEARER validator accepts. A real deployment names a real
provider instead, e.g. Amazon MSK's IAM signer (docs/security.md)."""

from __future__ import annotations

import base64
import json
import time

LIFETIME_SECONDS = 3600.0


def _part(content: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(content).encode()).decode().rstrip("=")


def unsecured_token(config: str) -> tuple[str, float]:
    """librdkafka's ``oauth_cb``: (token, expiry in epoch seconds)."""
    claims = dict(pair.split("=", 1) for pair in config.split())
    now = time.time()
    payload = {"sub": claims["sub"], "iat": int(now), "exp": int(now + LIFETIME_SECONDS)}
    return f"{_part({'alg': 'none'})}.{_part(payload)}.", now + LIFETIME_SECONDS
