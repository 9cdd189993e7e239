"""Every Parquet path kassa writes, and the atomic way it writes them.

Layout under ``KASSA_DATA_DIR`` (hive-partitioned by business day; folder names are part of
the public interface)::

    daily_item_sales/date=YYYY-MM-DD/part-0.parquet
    daily_store_item_sales/date=YYYY-MM-DD/part-0.parquet
    hourly_sales/date=YYYY-MM-DD/part-0.parquet
    sales_lines/date=YYYY-MM-DD/part-0.parquet
    _manifests/date=YYYY-MM-DD/manifest.json
    _manifests/date=YYYY-MM-DD/refused.json   (a day the invalid-share guard refused)

Each day of each table is exactly one file with a fixed name, so a re-run replaces it. A file
is written under a hidden temporary name in the same folder, fsynced, renamed over the final
name and the folder fsynced: a reader sees the old file or the new one, never a partial file.
Readers skip the hidden temporary files (names start with ``.``) and ``_manifests``.

The columns and types of every table (:func:`schema`) are the analysts' interface; the item
figures' columns are named in :mod:`storage.figures`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from common.columns import PRICE
from common.schema import MONEY_DECIMALS
from storage.figures import COLUMNS, LINES, MONEY_FIGURES

AggregateTable = Literal["daily_item_sales", "daily_store_item_sales", "hourly_sales"]
"""The tables of a day's aggregates (the rest is ``sales_lines``, one row per line)."""
Table = AggregateTable | Literal["sales_lines"]
TABLES: Final[tuple[Table, ...]] = (
    "daily_item_sales",
    "daily_store_item_sales",
    "hourly_sales",
    "sales_lines",
)

MONEY: Final = pl.Decimal(38, MONEY_DECIMALS)
"""A sum of money (revenue, discount): exact, with the money scale of :mod:`common.schema`."""
FIGURE_TYPES: Final = pl.Schema(
    {
        column: MONEY if figure in MONEY_FIGURES else pl.Int64()
        for figure, column in enumerate(COLUMNS)
    }
)
"""The columns of the item figures, in their order, and their types."""
TOTAL_TYPES: Final = pl.Schema({**FIGURE_TYPES, LINES: pl.Int64()})
"""The columns of a scope's totals (the figures, ``checkouts`` counting the scope's)."""
ITEM_SALES: Final = pl.Schema({"sku": pl.String(), "name": pl.String(), **FIGURE_TYPES})
STORE_ITEM_SALES: Final = pl.Schema({"store_id": pl.String(), **ITEM_SALES})
SALES_LINES: Final = pl.Schema(
    {
        "occurred_at": pl.Datetime("us", "UTC"),
        "transaction_id": pl.String(),
        "store_id": pl.String(),
        "register_id": pl.String(),
        "kind": pl.String(),
        "sku": pl.String(),
        "quantity": pl.Int32(),
        "unit_price": PRICE,
        "discount": PRICE,
    }
)
"""One row per line; ``discount`` is the line's discount as sent (0 for a version 1 line,
never negative: the item tables' ``discount`` takes the sign of the line's gross amount)."""


def schema(table: Table, zone: ZoneInfo) -> pl.Schema:
    """The columns of ``table`` in order, with their types.

    ``hourly_sales`` has ``hour``, the start of a local hour in the business time ``zone``,
    then :data:`TOTAL_TYPES`.
    """
    if table == "daily_item_sales":
        return ITEM_SALES
    if table == "daily_store_item_sales":
        return STORE_ITEM_SALES
    if table == "hourly_sales":
        return pl.Schema({"hour": pl.Datetime("us", zone.key), **TOTAL_TYPES})
    return SALES_LINES


def read_table(path: Path) -> pl.DataFrame:
    """A table's file, with any figure column it predates as zeros (a file written before
    message version 2 has no ``discount``)."""
    frame = pl.read_parquet(path)
    missing = [name for name in FIGURE_TYPES if name not in frame.columns]
    if not missing:
        return frame
    return frame.with_columns(pl.lit(0).cast(FIGURE_TYPES[name]).alias(name) for name in missing)


def arrow_schema(columns: pl.Schema) -> pa.Schema:
    """The Arrow schema Polars writes ``columns`` with."""
    return pl.DataFrame(schema=columns).to_arrow().schema


MANIFESTS: Final = "_manifests"
PART_NAME: Final = "part-0.parquet"
MANIFEST_NAME: Final = "manifest.json"
REFUSAL_NAME: Final = "refused.json"
COMPRESSION: Final = "zstd"
COMPRESSION_LEVEL: Final = 1
"""zstd's fastest level: on ``sales_lines`` it is cheaper than level 3 and, after the
dictionary and plain encodings, no larger (3.23 against 3.31 bytes per line)."""
PLAIN_COLUMNS: Final[dict[Table, tuple[str, ...]]] = {
    "sales_lines": ("occurred_at", "transaction_id")
}
"""Columns written without a dictionary: a checkout's time and id repeat only on its few
lines, so a dictionary costs a hash per line and compresses worse than zstd on plain values."""
STATISTICS_COLUMNS: Final[dict[Table, tuple[str, ...]]] = {"sales_lines": ("occurred_at",)}
"""Columns with min/max statistics, where a table should not have them on every column (on
``sales_lines`` they help only time filters, and string statistics cost a comparison per
value)."""


def day_folder(day: date) -> str:
    """The hive folder name of ``day``: ``date=YYYY-MM-DD``."""
    return f"date={day.isoformat()}"


def table_dir(data_dir: Path, table: Table) -> Path:
    """The folder of one table (all days)."""
    return data_dir / table


def table_path(data_dir: Path, table: Table, day: date) -> Path:
    """The one Parquet file of ``table`` for ``day``."""
    return table_dir(data_dir, table) / day_folder(day) / PART_NAME


def manifest_path(data_dir: Path, day: date) -> Path:
    """The manifest of ``day`` (written last: its presence means the day is finished)."""
    return data_dir / MANIFESTS / day_folder(day) / MANIFEST_NAME


def refusal_path(data_dir: Path, day: date) -> Path:
    """Why the last run of ``day`` refused to finalize it (:mod:`jobs.daily.refusals`);
    removed when a run finalizes the day."""
    return data_dir / MANIFESTS / day_folder(day) / REFUSAL_NAME


def lock_path(data_dir: Path, day: date) -> Path:
    """The lock file that serializes runs of one day."""
    return data_dir / MANIFESTS / day_folder(day) / ".lock"


def _temporary_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(temporary: Path, final: Path) -> None:
    """fsync ``temporary``, rename it over ``final`` and fsync the folder."""
    with temporary.open("rb+") as handle:
        os.fsync(handle.fileno())
    temporary.replace(final)
    _fsync_dir(final.parent)


def _open_writer(path: Path, schema: pa.Schema, table: Table | None = None) -> pq.ParquetWriter:
    plain = PLAIN_COLUMNS.get(table, ()) if table else ()
    statistics = STATISTICS_COLUMNS.get(table) if table else None
    return pq.ParquetWriter(
        path,
        schema,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        use_dictionary=[name for name in schema.names if name not in plain],
        write_statistics=list(statistics) if statistics is not None else True,
    )


def write_manifest_bytes(data_dir: Path, day: date, content: bytes) -> Path:
    """Write the manifest file of ``day`` atomically (its model and encoding:
    :mod:`jobs.daily.manifest`)."""
    final = manifest_path(data_dir, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(final)
    temporary.write_bytes(content)
    commit(temporary, final)
    return final


def read_manifest_bytes(data_dir: Path, day: date) -> bytes | None:
    """The manifest file of ``day``, or ``None`` if the day was never finished."""
    try:
        return manifest_path(data_dir, day).read_bytes()
    except FileNotFoundError:
        return None


def manifest_days(data_dir: Path) -> list[date]:
    """Every day with a manifest, in order."""
    root = data_dir / MANIFESTS
    if not root.is_dir():
        return []
    days = []
    for folder in root.glob("date=*"):
        if (folder / MANIFEST_NAME).is_file():
            days.append(date.fromisoformat(folder.name.removeprefix("date=")))
    return sorted(days)


class StagedFiles:
    """Files written under temporary names and renamed into place together by :meth:`commit`.

    Used as a context manager: leaving it without :meth:`commit` (an exception, a crash)
    removes the temporary files and leaves the previous files untouched.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []
        self._open: list[Path] = []

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()

    @contextmanager
    def writer(
        self, final: Path, schema: pa.Schema, table: Table | None = None
    ) -> Iterator[pq.ParquetWriter]:
        """A zstd Parquet writer on a temporary file staged to replace ``final``.

        ``table`` selects its column options (:data:`PLAIN_COLUMNS`, :data:`STATISTICS_COLUMNS`).
        """
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary_path(final)
        self._open.append(temporary)
        writer = _open_writer(temporary, schema, table)
        try:
            yield writer
        finally:
            writer.close()
        self._staged.append((temporary, final))

    def table(self, final: Path, table: pa.Table) -> None:
        """Stage ``table`` to replace ``final``."""
        with self.writer(final, table.schema) as writer:
            writer.write_table(table)

    def sizes(self) -> dict[Path, int]:
        """The size in bytes of each staged file, by final path."""
        return {final: temporary.stat().st_size for temporary, final in self._staged}

    def commit(self) -> None:
        """fsync and rename every staged file over its final path."""
        for temporary, final in self._staged:
            commit(temporary, final)
        self._open = [path for path in self._open if path.exists()]
        self._staged = []

    def discard(self) -> None:
        """Remove every temporary file not committed."""
        for temporary in self._open:
            temporary.unlink(missing_ok=True)
        self._open = []
        self._staged = []
