"""The HTTP API and the dashboard: :func:`create_app` builds the FastAPI application.

Every figure comes from :mod:`storage.rankings`, the functions ``kassa top`` uses. Errors
are JSON :class:`api.models.Problem` bodies with one line of explanation: 422 for a bad
parameter (named, with its accepted form), 404 for no data / an unknown store / a daily
ranking not computed, 410 for a day past the Redis retention, 503 when Redis is unreachable,
401 without KASSA_API_TOKEN when it is set (:mod:`api.auth`). ``/metrics`` serves the API's
request metrics (:mod:`api.metrics`) to Prometheus (with the token when it is set).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import redis
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.backoff import NoBackoff
from redis.retry import Retry

from api import models
from api.auth import require_token
from api.health import last_daily_run
from api.metrics import ApiMetrics, RequestMetrics
from api.problems import (
    ACCEPTED,
    PROBLEMS,
    RANKING_PROBLEMS,
    install_error_handlers,
    one_line,
    problem,
    public,
    shown,
)
from common.days import business_day, day_bounds, yesterday
from common.errors import DayOutOfRange
from common.redaction import redis_location
from common.settings import Settings
from jobs.daily.lock import DayLocks
from jobs.daily.manifest import encode, read_manifest
from jobs.daily.status import day_statuses
from storage import figures, parquet
from storage.connections import Client, open_redis
from storage.exceptions import (
    InvalidQueryError,
)
from storage.kafka.probe import KafkaProbe
from storage.rankings import (
    MAX_LIMIT,
    DayFigures,
    RankingQuery,
    Retention,
    day_range,
    day_totals,
    item_history,
    stores_of,
    top,
    total_json,
)
from storage.summaries import read_summaries

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
HISTORY_DAYS: Final = 14
REDIS_TIMEOUT_SECONDS: Final = 2.0
Source = Annotated[
    Literal["live", "daily"],
    Query(description="'live' (kassa stream) or 'daily' (kassa daily)", examples=["live"]),
]
Day = Annotated[date | None, Query(description="one business day YYYY-MM-DD")]
First = Annotated[
    date | None, Query(alias="from", description="first day of a range YYYY-MM-DD (with to)")
]
Last = Annotated[
    date | None, Query(alias="to", description="last day of a range YYYY-MM-DD (inclusive)")
]
Store = Annotated[
    str | None,
    Query(min_length=1, max_length=128, description="one store; absent = the whole chain"),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="how many items")]
By = Annotated[figures.RankedBy, Query(description="rank by net units or revenue")]


class _Days:
    """Resolves ``day`` / ``from`` / ``to`` into a range, with a default when all are absent."""

    def __init__(self, settings: Settings) -> None:
        self._zone = settings.zone
        self._retention = timedelta(days=settings.retention_days + 1)

    def today(self) -> date:
        return business_day(datetime.now(UTC), self._zone)

    def resolve(
        self, day: date | None, first: date | None, last: date | None, default: tuple[date, date]
    ) -> tuple[date, date]:
        if day is not None and (first is not None or last is not None):
            msg = "give either day or from and to, not both"
            raise InvalidQueryError("day", msg)
        if (first is None) != (last is None):
            parameter = "to" if last is None else "from"
            msg = f"{parameter} is missing: from and to go together ({ACCEPTED[parameter]})"
            raise InvalidQueryError(parameter, msg)
        for parameter, given in (("day", day), ("from", first), ("to", last)):
            if given is not None:
                self._servable(parameter, given)
        if first is not None and last is not None:
            day_range(first, last)
            return first, last
        if day is not None:
            return day, day
        return default

    def _servable(self, parameter: str, day: date) -> None:
        """Refuse a day whose bounds, or whose keys' expiry, Python's dates cannot hold."""
        try:
            day_bounds(day, self._zone)
            day_bounds(day + self._retention, self._zone)
        except (DayOutOfRange, OverflowError):
            msg = (
                f"{parameter}={day} is outside the days kassa serves (its keys would expire "
                "after year 9999); give a day of this era, YYYY-MM-DD"
            )
            raise InvalidQueryError(parameter, msg) from None

    def ranking_default(self, source: str) -> tuple[date, date]:
        day = yesterday(datetime.now(UTC), self._zone) if source == "daily" else self.today()
        return day, day

    def history_default(self) -> tuple[date, date]:
        today = self.today()
        return today - timedelta(days=HISTORY_DAYS - 1), today


def _over_days(
    source: str, start: date, end: date, store: str | None, days: list[DayFigures]
) -> dict[str, Any]:
    """The body of figures over days: the query, each day's figures and their sum."""
    return {
        "source": source,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "store": store,
        "days": [entry.as_json() for entry in days],
        "total": total_json(days),
    }


def create_app(settings: Settings, *, probe_kafka: bool = True) -> FastAPI:
    """The API over ``settings``' Redis database, Kafka topic and data folder.

    ``probe_kafka=False`` leaves ``/health``'s Kafka state at "not probed" (for tests that
    have no broker).
    """
    client = open_redis(settings, timeout=REDIS_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 1))
    probe = KafkaProbe(settings)
    retention = Retention(settings.zone, settings.retention_days, settings.data_dir)
    days = _Days(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if probe_kafka:
            probe.start()
        try:
            yield
        finally:
            probe.stop()
            client.close()

    app = FastAPI(
        title="kassa",
        summary="Live and daily sales rankings from Redis, with a live dashboard at /.",
        description="Rankings of a day or a range of days (combined in Redis), per store, by "
        "net units or revenue; an item's figures over days; day totals; stores; the daily "
        "job's manifests. Money is an exact decimal string. Errors are one-line JSON "
        "problems naming the parameter at fault and its accepted form. With KASSA_API_TOKEN "
        "set, every route but /health needs it: 'Authorization: Bearer <token>', or HTTP "
        "Basic with the token as the password.",
        version="1",
        lifespan=lifespan,
    )
    install_error_handlers(app, settings)
    require_token(app, settings.api_token)
    metrics = ApiMetrics()
    app.add_middleware(RequestMetrics, metrics=metrics)  # the outermost: counts 401s too
    context = _Context(settings, client, probe, retention, days)
    _add_ranking_routes(app, context)
    _add_figure_routes(app, context)
    _add_day_routes(app, context)
    _add_health_route(app, context)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


@dataclass(frozen=True)
class _Context:
    settings: Settings
    client: Client
    probe: KafkaProbe
    retention: Retention
    days: _Days


def _add_ranking_routes(app: FastAPI, context: _Context) -> None:
    client, retention, days = context.client, context.retention, context.days
    space = context.settings.key_space

    @app.get(
        "/api/rankings",
        response_model=models.Ranking,
        responses=RANKING_PROBLEMS,
        summary="Top items of a day or a range",
        description="One day (`day`) or a range (`from` and `to`, combined in Redis with "
        "ZUNIONSTORE); default: today for live, yesterday for daily. Best first, ties by sku.",
    )
    def rankings(
        *,
        source: Source = "live",
        day: Day = None,
        first: First = None,
        last: Last = None,
        store: Store = None,
        n: Limit = 10,
        by: By = figures.BY_UNITS,
    ) -> dict[str, Any]:
        start, end = days.resolve(day, first, last, days.ranking_default(source))
        query = RankingQuery(space, source, start, end, n, by, store)
        items = top(client, query, retention, datetime.now(UTC))
        return {
            "source": source,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "store": store,
            "by": by,
            "n": n,
            "items": [item.as_json() for item in items],
        }

    @app.get(
        "/api/stores",
        response_model=models.Stores,
        responses=PROBLEMS,
        summary="Stores with checkouts on a day or a range",
        description="Default: today.",
    )
    def stores(
        *, source: Source = "live", day: Day = None, first: First = None, last: Last = None
    ) -> dict[str, Any]:
        today = days.today()
        start, end = days.resolve(day, first, last, (today, today))
        return {
            "source": source,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "stores": stores_of(client, space, source, day_range(start, end)),
        }


def _add_figure_routes(app: FastAPI, context: _Context) -> None:
    client, days, space = context.client, context.days, context.settings.key_space

    @app.get(
        "/api/items/{sku}",
        response_model=models.ItemHistory,
        responses=PROBLEMS,
        summary="One item's figures over days",
        description=f"Default range: the {HISTORY_DAYS} days ending today.",
    )
    def item(
        *,
        sku: str,
        source: Source = "live",
        day: Day = None,
        first: First = None,
        last: Last = None,
        store: Store = None,
    ) -> dict[str, Any]:
        if not 1 <= len(sku) <= 64:
            raise InvalidQueryError("sku", f"sku {shown(sku)} is not accepted: {ACCEPTED['sku']}")
        start, end = days.resolve(day, first, last, days.history_default())
        name, history = item_history(client, space, source, sku, day_range(start, end), store)
        return {"sku": sku, "name": name, **_over_days(source, start, end, store, history)}

    @app.get(
        "/api/totals",
        response_model=models.Totals,
        responses=PROBLEMS,
        summary="Day totals over days",
        description=f"Default range: the {HISTORY_DAYS} days ending today.",
    )
    def totals(
        *,
        source: Source = "live",
        day: Day = None,
        first: First = None,
        last: Last = None,
        store: Store = None,
    ) -> dict[str, Any]:
        start, end = days.resolve(day, first, last, days.history_default())
        found = day_totals(client, space, source, day_range(start, end), store)
        return _over_days(source, start, end, store, found)


def _add_day_routes(app: FastAPI, context: _Context) -> None:
    settings, days = context.settings, context.days

    @app.get(
        "/api/days",
        response_model=models.Days,
        responses=PROBLEMS,
        summary="Status of each day: live and daily keys, expiry, manifest",
        description=f"Default range: the {HISTORY_DAYS} days ending today.",
    )
    def day_status(first: First = None, last: Last = None) -> dict[str, Any]:
        start, end = days.resolve(None, first, last, days.history_default())
        bodies = _day_status_bodies(context, day_range(start, end))
        return {"from": start.isoformat(), "to": end.isoformat(), "days": bodies}

    @app.get(
        "/api/manifests/{day}",
        responses={404: {"model": models.Problem, "description": "no manifest for the day"}},
        summary="The daily job's manifest of a day, as written under KASSA_DATA_DIR",
    )
    def manifest(day: date) -> Any:
        found = read_manifest(settings.data_dir, day)
        if found is None:
            path = parquet.manifest_location(settings.data_dir, day)
            detail = (
                f"no daily manifest for {day} at {path}: the day is not finished; compute it "
                f"with `kassa daily run --day {day}`"
            )
            return problem(404, "daily_not_computed", public(detail, settings))
        return Response(encode(found), media_type="application/json")


def _add_health_route(app: FastAPI, context: _Context) -> None:
    settings, client, probe = context.settings, context.client, context.probe

    @app.get(
        "/health",
        response_model=models.Health,
        responses={503: {"model": models.Health, "description": "Redis is unreachable"}},
        summary="200 while Redis answers, 503 with the reason otherwise",
        description="The body also reports Kafka, the stream job's lag (committed offsets of "
        "KASSA_CONSUMER_GROUP against the high watermarks) and the last daily run; those "
        "never fail the probe.",
    )
    def health() -> JSONResponse:
        reason = None
        try:
            client.ping()
        except redis.RedisError as exc:
            reason = f"cannot reach {redis_location(settings)}: {one_line(exc)}"
        state = probe.state
        body = models.Health(
            status="ok" if reason is None else "unavailable",
            reason=reason,
            redis={"reachable": reason is None, "reason": reason},
            kafka=state.as_json(),
            stream={
                "consumer_group": settings.consumer_group,
                "topic": settings.topic,
                "lag": state.lag,
            },
            daily=last_daily_run(settings),
        )
        return JSONResponse(body.model_dump(), status_code=200 if reason is None else 503)


def _day_status_bodies(context: _Context, listed: list[date]) -> list[models.DayStatusBody]:
    """Each of ``listed``: the daily job's state, what Redis holds of it, whether it expired."""
    client, space = context.client, context.settings.key_space
    live = day_totals(client, space, "live", listed)
    daily = read_summaries(client, space, listed)
    statuses = day_statuses(context.settings.data_dir, listed, DayLocks.of(context.settings))
    now = datetime.now(UTC)
    return [
        models.DayStatusBody.of(
            status,
            live=in_live.present,
            daily=daily[status.day] is not None,
            expired=context.retention.expired(status.day, now),
        )
        for status, in_live in zip(statuses, live, strict=True)
    ]
