"""What the API answers when it cannot answer: JSON :class:`api.models.Problem` bodies with
one line of explanation, and the error handlers that make them.

422 for a bad parameter (named, with its accepted form), 404 for no data / an unknown store
/ a daily ranking not computed, 410 for a day past the Redis retention, 503 when Redis is
unreachable, 500 for a bug (logged). A body quotes at most :data:`SHOWN_CHARACTERS` of a
value, never a password (:mod:`common.redaction`) nor the data folder's path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api import models
from common.errors import DayOutOfRange
from common.redaction import redis_location
from common.settings import Settings
from storage import figures
from storage.exceptions import (
    DailyNotComputedError,
    DataStoreError,
    DayExpiredError,
    InvalidQueryError,
    NoDataError,
    RankingError,
    UnknownStoreError,
)
from storage.location import open_store
from storage.rankings import MAX_LIMIT

logger = logging.getLogger(__name__)

SHOWN_CHARACTERS: Final = 80
"""How much of a refused parameter's value an error body quotes."""
ACCEPTED: Final = {
    "source": "'live' or 'daily'",
    "by": figures.RANKED_BY_CHOICES,
    "day": "a date YYYY-MM-DD, e.g. 2026-11-21",
    "from": "a date YYYY-MM-DD, e.g. 2026-11-15 (with to)",
    "to": "a date YYYY-MM-DD, e.g. 2026-11-21 (with from)",
    "n": f"a whole number from 1 to {MAX_LIMIT}",
    "store": "a store id (1 to 128 characters), see /api/stores",
    "sku": "an item's sku (1 to 64 characters)",
}
ERROR_STATUS: Final[dict[type[RankingError], tuple[int, str]]] = {
    InvalidQueryError: (422, "invalid_parameter"),
    NoDataError: (404, "no_data"),
    UnknownStoreError: (404, "unknown_store"),
    DailyNotComputedError: (404, "daily_not_computed"),
    DayExpiredError: (410, "day_expired"),
}
PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    422: {"model": models.Problem, "description": "a parameter is not in its accepted form"},
    503: {"model": models.Problem, "description": "Redis is unreachable"},
}
RANKING_PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    **PROBLEMS,
    404: {"model": models.Problem, "description": "no data, unknown store, or not computed"},
    410: {"model": models.Problem, "description": "past the Redis retention"},
}


def problem(status: int, error: str, detail: str, parameter: str | None = None) -> JSONResponse:
    """A :class:`api.models.Problem` body with ``status``."""
    body = models.Problem(error=error, parameter=parameter, detail=detail)
    return JSONResponse(body.model_dump(), status_code=status)


def one_line(exc: BaseException) -> str:
    """The first line of what ``exc`` says (its type when it says nothing)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def shown(value: object) -> str:
    """``value`` as an error body quotes it: its repr, cut to :data:`SHOWN_CHARACTERS`."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}... ({len(str(value))} characters)"


def public(text: str, settings: Settings) -> str:
    """``text`` with the data folder's absolute path (or object-store location) named by its
    setting instead (a body must not tell a client where the server keeps its files)."""
    return text.replace(open_store(settings.data_dir).shown(), "$KASSA_DATA_DIR")


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        error = exc.errors()[0]
        location = [str(part) for part in error.get("loc", ())]
        parameter = location[-1] if location else "request"
        accepted = ACCEPTED.get(parameter, error.get("msg", "see /docs"))
        detail = f"{parameter}={shown(error.get('input'))} is not accepted: {accepted}"
        return problem(422, "invalid_parameter", detail, parameter)

    async def ranking_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RankingError)
        status, error = ERROR_STATUS.get(type(exc), (404, "not_found"))
        parameter = exc.parameter if isinstance(exc, InvalidQueryError) else None
        return problem(status, error, public(one_line(exc), settings), parameter)

    async def redis_error(_: Request, exc: Exception) -> JSONResponse:
        detail = f"cannot reach {redis_location(settings)}: {one_line(exc)}"
        return problem(503, "redis_unavailable", detail)

    async def data_store_error(_: Request, exc: Exception) -> JSONResponse:
        return problem(503, "data_store_unavailable", public(one_line(exc), settings))

    async def out_of_range(_: Request, exc: Exception) -> JSONResponse:
        return problem(422, "invalid_parameter", one_line(exc))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error")
        detail = public(f"{type(exc).__name__}: {one_line(exc)}", settings)
        return problem(500, "internal", detail)

    handlers: dict[type[Exception], Callable[[Request, Exception], Any]] = {
        RequestValidationError: invalid_request,
        RankingError: ranking_error,
        redis.RedisError: redis_error,
        DataStoreError: data_store_error,
        DayOutOfRange: out_of_range,
        Exception: unexpected,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
