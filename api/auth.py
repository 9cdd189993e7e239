"""Optional authentication of the API and the dashboard by one shared token (KASSA_API_TOKEN).

When the token is set, every request but ``GET /health`` (the orchestrator's probe) must
carry it: ``Authorization: Bearer <token>`` from a program, or HTTP Basic with any user name
and the token as the password from a browser. The check is Starlette's
:class:`~starlette.middleware.authentication.AuthenticationMiddleware`, so it covers every
route, the OpenAPI pages and the static files alike, before any of them runs. A refusal is
a 401 :class:`api.models.Problem` with both challenges: the Basic one makes a browser ask
for the password once and then send it with each of the dashboard's own requests (they are
same-origin ``fetch`` calls). No answer quotes what the client presented.
"""

from __future__ import annotations

import hmac
from typing import Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import SecretStr
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from api.problems import problem

REALM: Final = "kassa"
OPEN_PATHS: Final = frozenset({"/health"})
"""Paths answered without the token."""
CHALLENGES: Final = (f'Bearer realm="{REALM}"', f'Basic realm="{REALM}", charset="UTF-8"')
"""The ``WWW-Authenticate`` headers of a 401, one per accepted scheme."""
HOW: Final = (
    "send 'Authorization: Bearer <KASSA_API_TOKEN>', or HTTP Basic with any user name and "
    "the token as the password"
)

_bearer = HTTPBearer(auto_error=False)
_basic = HTTPBasic(auto_error=False, realm=REALM)


class TokenBackend(AuthenticationBackend):
    """Lets a request through when it presents ``token`` as a Bearer token or a Basic password."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token.get_secret_value().encode()

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """The caller, or :class:`AuthenticationError` saying what is missing (never what
        was presented)."""
        if conn.scope["path"] in OPEN_PATHS:
            return None
        request = Request(conn.scope)
        bearer = await _bearer(request)
        if bearer is not None:
            presented, user = bearer.credentials, "bearer"
        else:
            try:
                basic = await _basic(request)
            except HTTPException:
                msg = f"the Basic credentials are not base64 of user:password; {HOW}"
                raise AuthenticationError(msg) from None
            if basic is None:
                msg = f"this server needs its KASSA_API_TOKEN: {HOW}"
                raise AuthenticationError(msg)
            presented, user = basic.password, basic.username
        if not hmac.compare_digest(presented.encode(), self._token):
            msg = f"the token presented is not this server's KASSA_API_TOKEN; {HOW}"
            raise AuthenticationError(msg)
        return AuthCredentials(["authenticated"]), SimpleUser(user)


def refusal(_: HTTPConnection, exc: AuthenticationError) -> JSONResponse:
    """The 401 answer: a one-line problem and a challenge for each accepted scheme."""
    response = problem(401, "unauthorized", str(exc))
    for challenge in CHALLENGES:
        response.headers.append("WWW-Authenticate", challenge)
    return response


def require_token(app: FastAPI, token: SecretStr | None) -> None:
    """Make every route of ``app`` but :data:`OPEN_PATHS` need ``token``; none when ``None``."""
    if token is not None:
        app.add_middleware(AuthenticationMiddleware, backend=TokenBackend(token), on_error=refusal)
