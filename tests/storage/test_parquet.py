"""Parquet layout and atomic writes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from storage import parquet

DAY = date(2026, 3, 29)


def test_layout_is_hive_partitioned_with_fixed_names(tmp_path: Path) -> None:
    assert parquet.table_path(tmp_path, "daily_item_sales", DAY) == (
        tmp_path / "daily_item_sales" / "date=2026-03-29" / "part-0.parquet"
    )
    assert parquet.manifest_path(tmp_path, DAY) == (
        tmp_path / "_manifests" / "date=2026-03-29" / "manifest.json"
    )


def test_staged_files_replace_on_commit_and_vanish_on_error(tmp_path: Path) -> None:
    final = parquet.table_path(tmp_path, "hourly_sales", DAY)
    with parquet.StagedFiles() as staged:
        staged.table(final, pa.table({"x": [1, 2]}))
        assert not final.exists()
        staged.commit()
    assert pl.read_parquet(final)["x"].to_list() == [1, 2]

    with pytest.raises(RuntimeError), parquet.StagedFiles() as staged:
        staged.table(final, pa.table({"x": [3]}))
        raise RuntimeError
    assert pl.read_parquet(final)["x"].to_list() == [1, 2]
    assert [path.name for path in final.parent.iterdir()] == ["part-0.parquet"]


def test_readers_skip_temporary_files_and_see_the_date_column(tmp_path: Path) -> None:
    with parquet.StagedFiles() as staged:
        staged.table(parquet.table_path(tmp_path, "daily_item_sales", DAY), pa.table({"x": [1]}))
        staged.commit()
    with (
        parquet.StagedFiles() as staged,
        staged.writer(
            parquet.table_path(tmp_path, "daily_item_sales", date(2026, 3, 30)),
            pa.schema([("x", pa.int64())]),
        ) as writer,
    ):
        writer.write_table(pa.table({"x": [99]}))
        dataset = ds.dataset(tmp_path / "daily_item_sales", format="parquet", partitioning="hive")
        table = dataset.to_table()
        assert table.column("x").to_pylist() == [1]
        assert [str(value) for value in table.column("date").to_pylist()] == ["2026-03-29"]
        frame = pl.scan_parquet(
            tmp_path / "daily_item_sales" / "**" / "*.parquet", hive_partitioning=True
        ).collect()
        assert frame["x"].to_list() == [1]


def test_manifest_file_round_trip_and_listing(tmp_path: Path) -> None:
    assert parquet.read_manifest_bytes(tmp_path, DAY) is None
    assert parquet.manifest_days(tmp_path) == []
    written = parquet.write_manifest_bytes(tmp_path, DAY, b'{"complete": true}\n')
    assert written == parquet.manifest_path(tmp_path, DAY)
    assert parquet.read_manifest_bytes(tmp_path, DAY) == b'{"complete": true}\n'
    assert parquet.manifest_days(tmp_path) == [DAY]
    assert [path.name for path in written.parent.iterdir()] == ["manifest.json"]
