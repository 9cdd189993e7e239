"""What TLS and an ACL user cost the stream job on the Redis side: the same job writing to a
plaintext redis-server and to one secured as ``kassa services up --secure`` secures it.

The module starts two redis-servers of its own in a temporary folder on free ports, with the
bench's ``KASSA_REDIS_APPENDFSYNC``: one plaintext, one listening with TLS only (a
certificate from a CA made on the spot, :mod:`services.security`) whose default user is off
and whose ``kassa`` ACL user holds only :func:`~services.security.kassa_redis_rules`. The
same seeded checkouts go to one fresh topic of the bench's broker; the real job
(:func:`bench.stream.stream_run`, exactly-once defaults) reads it from the beginning into
each Redis in turn (A B A B ..., one untimed pair first): the median checkouts/s of each,
the median of the pairs' TLS/plaintext ratios, and the CPU per checkout of the consumer, the
writers, the Redis that served the run and the broker.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from bench import plots
from bench.report import Figure, Section, rate_row, table
from bench.session import Bench
from bench.stream import RATE, SEED, Run, Variant, alternated_pairs, cpu_table, stream_run
from bench.workload import drop_topic, fresh_topic, produce, stream_checkouts
from common.settings import Settings
from jobs.stream.malloc import keep_batch_memory
from services.process import free_port
from services.redis import RedisServer
from services.security import ADMIN_USER, KASSA_USER, SECURE_FOLDER, SecureFiles

HOST: Final = "127.0.0.1"
RATIO: Final = "TLS / plaintext Redis throughput"


@contextmanager
def redis_pair(settings: Settings) -> Iterator[tuple[Settings, Settings]]:
    """A plaintext and a secured redis-server in a temporary folder, stopped at the end:
    ``settings`` reaching each (the secured one as ``kassa``, over TLS)."""
    with tempfile.TemporaryDirectory(prefix="kassa-bench-redis-") as folder, ExitStack() as stack:
        home = Path(folder)
        plain_port, tls_port = free_port(HOST), free_port(HOST)
        files = SecureFiles(home / SECURE_FOLDER)
        files.make_redis(HOST, f"redis://{HOST}:{tls_port}/0")
        plain = RedisServer(HOST, plain_port, home / "plain", settings.redis_appendfsync)
        secured = RedisServer(
            HOST,
            tls_port,
            home / "tls",
            settings.redis_appendfsync,
            username=ADMIN_USER,
            password=SecretStr(files.password(f"redis-{ADMIN_USER}")),
            tls=files.redis_tls,
            users=files.redis_users(),
        )
        for server in (plain, secured):
            server.start()
            stack.callback(server.stop)
        yield (
            settings.model_copy(update={"redis_url": f"redis://{HOST}:{plain_port}/0"}),
            settings.model_copy(
                update={
                    "redis_url": f"rediss://{HOST}:{tls_port}/0",
                    "redis_username": KASSA_USER,
                    "redis_password": SecretStr(files.password(f"redis-{KASSA_USER}")),
                    "redis_ssl_ca_location": files.ca,
                }
            ),
        )


def _run_on(bench: Bench, source: Settings, redis: Settings) -> Run:
    """One run of the job over ``source``'s topic into the Redis of ``redis`` (whose process
    is the one metered)."""
    update = {name: getattr(redis, name) for name in _REDIS_FIELDS}
    served = dataclasses.replace(bench, settings=bench.settings.model_copy(update=update))
    return stream_run(served, source, **update)


_REDIS_FIELDS: Final = (
    "redis_url",
    "redis_username",
    "redis_password",
    "redis_ssl_ca_location",
)


def _measure(bench: Bench, plain: Settings, secured: Settings) -> list[Figure]:
    """Every run of both variants, alternated; their figures and the pairs' ratios."""
    source = fresh_topic(bench.settings, "redis_tls")
    try:
        produce(source, stream_checkouts(SEED, bench.scale.stream_messages))
        plaintext = Variant(
            "plaintext",
            "kassa stream, Redis plaintext",
            "kassa",
            lambda bench, source: _run_on(bench, source, plain),
        )
        tls = Variant(
            "tls",
            f"kassa stream, Redis TLS as ACL user {KASSA_USER!r}",
            "kassa",
            lambda bench, source: _run_on(bench, source, secured),
        )
        return alternated_pairs(bench, (plaintext, source), (tls, source), RATIO)
    finally:
        drop_topic(source)


def run(bench: Bench) -> Section:
    """Throughput and CPU per checkout of the job into plaintext and TLS Redis; one section."""
    keep_batch_memory()  # the allocator tuning of kassa stream, as in bench.stream
    with redis_pair(bench.settings) as (plain, secured):
        found = _measure(bench, plain, secured)
    rates = [f for f in found if f.unit == RATE]
    ratio = next(f for f in found if f.name == RATIO)
    cpu_text, stacks = cpu_table(found)
    plot = plots.stacked_bars(
        bench.results, "redis-tls-cpu.png",
        "CPU per checkout by process, Redis plaintext vs TLS (µs)", stacks, "µs",
    )  # fmt: skip
    scale, settings = bench.scale, bench.settings
    markdown = "\n\n".join(
        [
            f"`kassa stream` (exactly-once defaults, {settings.stream_writers} writer "
            f"processes) on the same {scale.stream_messages:,} pre-produced synthetic "
            f"checkouts ({settings.partitions} partitions) from the bench's broker, written "
            "to a plaintext redis-server and to one listening with TLS only, as the `kassa` "
            "ACL user (`kassa services up --secure`'s Redis), both started for this section "
            f"on the same machine (appendfsync {settings.redis_appendfsync}). The runs "
            f"alternate, plaintext then TLS, {scale.repetitions} pair(s) after one untimed "
            "pair; medians. Command: `python -m bench --only redis_tls`.",
            table(
                ["variant", "checkouts per run", "median checkouts/s", "min - max"],
                [rate_row(f) for f in rates],
            ),
            f"TLS / plaintext throughput: **{ratio.median:.0%}** (the median of each pair's "
            "ratio).",
            "CPU per checkout of each process over the timed span (microseconds, medians; "
            "`redis` is the server that served the run):",
            cpu_text,
            "TLS costs an encryption per reply and request on both sides: the writers send "
            "one script call per partition batch, so the cost is per batch, not per checkout; "
            "the ACL check is a lookup per command.",
        ]
    )
    notes = {
        "checkouts": scale.stream_messages,
        "partitions": settings.partitions,
        "appendfsync": settings.redis_appendfsync,
    }
    return Section("redis_tls", "Stream job on a TLS Redis", markdown, tuple(found), (plot,), notes)
