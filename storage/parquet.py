"""Every Parquet path kassa writes, and the atomic way it writes them.

Layout under ``KASSA_DATA_DIR`` (hive-partitioned by business day; folder names are part of
the public interface)::

    daily_item_sales/date=YYYY-MM-DD/part-0.parquet
    daily_store_item_sales/date=YYYY-MM-DD/part-0.parquet
    hourly_sales/date=YYYY-MM-DD/part-0.parquet
    sales_lines/date=YYYY-MM-DD/part-0.parquet
    _manifests/date=YYYY-MM-DD/manifest.json
    _manifests/date=YYYY-MM-DD/refused.json   (a day the invalid-share guard refused)

Each day of each table is exactly one file with a fixed name, so a re-run replaces it.

**A local folder**: a file is written under a hidden temporary name in the same folder,
fsynced, renamed over the final name and the folder fsynced: a reader sees the old file or the
new one, never a partial file. Readers skip the hidden temporary files (names start with
``.``) and ``_manifests``.

**An object store** has no rename, so a run publishes through its manifest
(:func:`day_files`, :func:`publish`): it uploads each table under a name of its own,
``_revisions/date=YYYY-MM-DD/<run id>/<table>.parquet``; then the manifest, whose
``tables.<table>.path`` names them, as the commit marker; only then does it copy each object
over the fixed hive name above (one server-side copy: a reader of the hive folders sees the
previous object or the new one, each a whole revision of its table) and delete the objects of
the day's other runs. A crash before the manifest leaves the previous revision readable and
whole (its objects and manifest untouched); one after it leaves the hive folders a revision
behind until the day is run again. Readers that must see the four tables of one revision go
through the manifest; readers skip ``_revisions`` and ``_manifests``.

The columns and types of every table (:func:`schema`) are the analysts' interface; the item
figures' columns are named in :mod:`storage.figures`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final, Literal, Protocol
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from common.columns import PRICE
from common.schema import MONEY_DECIMALS
from common.settings.location import DataLocation, DataUrl
from storage.exceptions import DataStoreError
from storage.figures import COLUMNS, LINES, MONEY_FIGURES
from storage.location import ObjectStore, commit, open_store, temporary_path

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
REVISIONS: Final = "_revisions"
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


def table_file(table: Table, day: date) -> str:
    """The hive path of ``table``'s one file for ``day``, relative to ``KASSA_DATA_DIR``."""
    return f"{table}/{day_folder(day)}/{PART_NAME}"


def manifest_file(day: date) -> str:
    """The manifest of ``day``, relative to ``KASSA_DATA_DIR``."""
    return f"{MANIFESTS}/{day_folder(day)}/{MANIFEST_NAME}"


def revision_folder(day: date) -> str:
    """Where an object store keeps the revisions of ``day`` (relative)."""
    return f"{REVISIONS}/{day_folder(day)}"


def revision_file(table: Table, day: date, run_id: str) -> str:
    """The object of ``table`` written by run ``run_id`` of ``day`` on an object store."""
    return f"{revision_folder(day)}/{run_id}/{table}.parquet"


def table_dir(data_dir: Path, table: Table) -> Path:
    """The folder of one table (all days)."""
    return data_dir / table


def table_path(data_dir: Path, table: Table, day: date) -> Path:
    """The one Parquet file of ``table`` for ``day``."""
    return data_dir / table_file(table, day)


def manifest_path(data_dir: Path, day: date) -> Path:
    """The manifest of ``day`` (written last: its presence means the day is finished)."""
    return data_dir / manifest_file(day)


def refusal_file(day: date) -> str:
    """Why the last run of ``day`` refused to finalize it (:mod:`jobs.daily.refusals`),
    relative to ``KASSA_DATA_DIR``; removed when a run finalizes the day."""
    return f"{MANIFESTS}/{day_folder(day)}/{REFUSAL_NAME}"


def write_refusal_bytes(location: DataLocation, day: date, content: bytes) -> None:
    """Write the refusal file of ``day`` whole."""
    open_store(location).write_bytes(refusal_file(day), content)


def read_refusal_bytes(location: DataLocation, day: date) -> bytes | None:
    """The refusal file of ``day``, or ``None`` when its last run did not refuse it."""
    return open_store(location).read_bytes(refusal_file(day))


def delete_refusal(location: DataLocation, day: date) -> None:
    """Remove the refusal file of ``day``, if there is one."""
    store = open_store(location)
    relative = refusal_file(day)
    if isinstance(store, ObjectStore):
        if store.exists(relative):
            store.delete([relative])
    else:
        Path(store.path(relative)).unlink(missing_ok=True)


def lock_path(data_dir: Path, day: date) -> Path:
    """The lock file that serializes runs of one day."""
    return data_dir / MANIFESTS / day_folder(day) / ".lock"


def manifest_location(location: DataLocation, day: date) -> DataLocation:
    """Where the manifest of ``day`` is: a local path, or the object's URI (for messages)."""
    if isinstance(location, Path):
        return manifest_path(location, day)
    return DataUrl(open_store(location).shown(manifest_file(day)))


def _open_writer(
    path: str | Path,
    schema: pa.Schema,
    table: Table | None = None,
    filesystem: pafs.FileSystem | None = None,
) -> pq.ParquetWriter:
    plain = PLAIN_COLUMNS.get(table, ()) if table else ()
    statistics = STATISTICS_COLUMNS.get(table) if table else None
    return pq.ParquetWriter(
        path,
        schema,
        filesystem=filesystem,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        use_dictionary=[name for name in schema.names if name not in plain],
        write_statistics=list(statistics) if statistics is not None else True,
    )


def write_manifest_bytes(location: DataLocation, day: date, content: bytes) -> DataLocation:
    """Write the manifest file of ``day`` whole (its model and encoding:
    :mod:`jobs.daily.manifest`); where it is."""
    open_store(location).write_bytes(manifest_file(day), content)
    return manifest_location(location, day)


def read_manifest_bytes(location: DataLocation, day: date) -> bytes | None:
    """The manifest file of ``day``, or ``None`` if the day was never finished."""
    return open_store(location).read_bytes(manifest_file(day))


def manifest_days(location: DataLocation) -> list[date]:
    """Every day with a manifest, in order."""
    days = []
    for relative in open_store(location).files(MANIFESTS):
        folder, _, name = relative.removeprefix(f"{MANIFESTS}/").partition("/")
        if name == MANIFEST_NAME and folder.startswith("date="):
            days.append(date.fromisoformat(folder.removeprefix("date=")))
    return sorted(days)


def scan_table(location: DataLocation, relative: str) -> pl.LazyFrame:
    """The Parquet file ``relative`` (a manifest's table path) of ``location``, to query.

    Raises :class:`FileNotFoundError` naming it when it is missing.
    """
    store = open_store(location)
    if not isinstance(store, ObjectStore):
        path = Path(store.shown(relative))
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
        return pl.scan_parquet(path)
    if not store.exists(relative):
        raise FileNotFoundError(errno.ENOENT, "no such object", store.shown(relative))
    with store.failures(f"read {store.shown(relative)}"):
        table = pq.read_table(store.path(relative), filesystem=store.filesystem)
    return pl.DataFrame(table).lazy()


@dataclass(frozen=True)
class WrittenFile:
    """A file a run wrote: where (relative to ``KASSA_DATA_DIR``) and its size."""

    path: str
    size: int


class DayFiles(Protocol):
    """The four tables of one run of a day, staged so that no reader sees them before the
    run publishes them (:func:`day_files`). Used as a context manager: leaving it before
    :meth:`commit` removes what it wrote."""

    def __enter__(self) -> DayFiles:
        """Stage the files."""

    def __exit__(self, *exc_info: object) -> None:
        """Remove what was written and not committed."""

    def writer(self, table: Table, schema: pa.Schema) -> AbstractContextManager[pq.ParquetWriter]:
        """A zstd Parquet writer of ``table`` with its column options."""

    def table(self, table: Table, data: pa.Table) -> None:
        """Write ``data`` as ``table``."""

    def commit(self) -> dict[Table, WrittenFile]:
        """Put the files where the manifest will name them; what was written, by table."""


def day_files(location: DataLocation, day: date, run_id: str) -> DayFiles:
    """The files of run ``run_id`` of ``day``: on a local disk renamed over the fixed names
    at :meth:`DayFiles.commit`; on an object store written under names of their own
    (:func:`revision_file`), which only the run's manifest publishes."""
    store = open_store(location)
    if isinstance(store, ObjectStore):
        return RevisionFiles(store, day, run_id)
    assert isinstance(location, Path)
    return LocalDayFiles(location, day)


class LocalDayFiles:
    """A day's files in a local folder, under their fixed names (:class:`StagedFiles`)."""

    def __init__(self, data_dir: Path, day: date) -> None:
        self._data_dir = data_dir
        self._day = day
        self._staged = StagedFiles()

    def __enter__(self) -> LocalDayFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._staged.discard()

    def writer(self, table: Table, schema: pa.Schema) -> AbstractContextManager[pq.ParquetWriter]:
        """A writer of a hidden temporary file beside the table's file."""
        return self._staged.writer(table_path(self._data_dir, table, self._day), schema, table)

    def table(self, table: Table, data: pa.Table) -> None:
        """Stage ``data`` to replace the table's file."""
        self._staged.table(table_path(self._data_dir, table, self._day), data)

    def commit(self) -> dict[Table, WrittenFile]:
        """fsync and rename every file over its fixed name."""
        sizes = self._staged.sizes()
        self._staged.commit()
        written: dict[Table, WrittenFile] = {}
        for table in TABLES:
            path = table_path(self._data_dir, table, self._day)
            if path in sizes:
                written[table] = WrittenFile(table_file(table, self._day), sizes[path])
        return written


class RevisionFiles:
    """A day's objects in an object store, under names of their run (:func:`revision_file`).

    An object appears whole when its upload completes; nothing reads it before the run's
    manifest names it, and :func:`publish` removes the objects of other runs after that.
    """

    def __init__(self, store: ObjectStore, day: date, run_id: str) -> None:
        self._store = store
        self._day = day
        self._run_id = run_id
        self._written: dict[Table, str] = {}
        self._committed = False

    def __enter__(self) -> RevisionFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            with suppress(DataStoreError):
                self._store.delete(list(self._written.values()))

    @contextmanager
    def writer(self, table: Table, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """A writer uploading the run's object of ``table`` (multipart, as it fills)."""
        relative = revision_file(table, self._day, self._run_id)
        with self._store.failures(f"write {self._store.shown(relative)}"):
            writer = _open_writer(self._store.path(relative), schema, table, self._store.filesystem)
            self._written[table] = relative
            try:
                yield writer
            finally:
                writer.close()

    def table(self, table: Table, data: pa.Table) -> None:
        """Upload ``data`` as the run's object of ``table``."""
        with self.writer(table, data.schema) as writer:
            writer.write_table(data)

    def commit(self) -> dict[Table, WrittenFile]:
        """Nothing to move (the objects are whole); their sizes, by table."""
        self._committed = True
        written = {}
        for table, relative in self._written.items():
            with self._store.failures(f"look up {self._store.shown(relative)}"):
                info = self._store.filesystem.get_file_info(self._store.path(relative))
            written[table] = WrittenFile(relative, int(info.size or 0))
        return written


def publish(location: DataLocation, day: date, files: Mapping[Table, str]) -> None:
    """After the manifest naming ``files`` (table -> relative path) is in place: copy each of
    an object store's revision objects over its table's fixed hive name
    (:func:`table_file`, for readers that list the folders) and delete the objects of every
    other run of ``day``. A local folder has nothing to do (the files are in place)."""
    store = open_store(location)
    if not isinstance(store, ObjectStore):
        return
    for table, relative in files.items():
        if relative != table_file(table, day):
            store.copy(relative, table_file(table, day))
    current = set(files.values())
    stale = [path for path in store.files(revision_folder(day)) if path not in current]
    store.delete(stale)


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
        temporary = temporary_path(final)
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
