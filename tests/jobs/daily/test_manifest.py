"""The manifest model against files written by earlier kassa versions (pure, no services).

``manifests/manifest-v2.json`` was written by the daily job before the manifest had a model
(a run with invalid messages, a duplicate, late records of the day before, drift from the live
figures and a refused repair); ``manifest-v1.json`` is the same day as the version-1 writer
wrote it (without revisions, late records, retention gaps and completeness cases);
``manifest-v3.json`` the same day in the current format (message versions, discounts and the
invalid-share guard added).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.daily.exceptions import ManifestUnreadable
from jobs.daily.manifest import (
    MANIFEST_VERSION,
    Counts,
    LateEntry,
    Manifest,
    Timings,
    Totals,
    decode,
    encode,
    read_manifest,
    write_manifest,
)
from storage import parquet
from storage.figures import TOTALS

FIXTURES = Path(__file__).parent / "manifests"
DAY = date(2026, 11, 21)


def _fixture(version: int) -> tuple[bytes, Path]:
    path = FIXTURES / f"manifest-v{version}.json"
    return path.read_bytes(), path


def _decoded(version: int) -> Manifest:
    content, path = _fixture(version)
    return decode(content, DAY, path)


def test_a_version_3_manifest_decodes_and_encodes_to_the_same_bytes() -> None:
    content, path = _fixture(3)
    manifest = decode(content, DAY, path)

    assert manifest.manifest_version == MANIFEST_VERSION == 3
    assert manifest.totals.discount == Decimal("1.5000")
    assert manifest.schema_versions == [1, 2]
    assert manifest.max_invalid_share == 0.05
    assert not manifest.invalid_share_forced
    assert encode(manifest) == content


def test_a_version_2_manifest_decodes_with_the_defaults_of_later_fields() -> None:
    content, path = _fixture(2)
    manifest = decode(content, DAY, path)

    assert manifest.manifest_version == 2
    assert manifest.totals.discount == 0
    assert (manifest.schema_versions, manifest.max_invalid_share) == ([], None)
    assert not manifest.invalid_share_forced
    assert manifest.day == DAY
    assert manifest.totals == Totals(
        units=32,
        units_sold=33,
        units_returned=1,
        revenue=Decimal("32.2000"),
        checkouts=32,
        lines=33,
    )
    assert manifest.counts.invalid == {"malformed_json": 1}
    assert [part.case for part in manifest.partitions] == ["records"] * 3
    assert manifest.tables["sales_lines"].size == 2284
    assert manifest.late_records == {"2026-11-20": LateEntry(records=1, reach={"0": 12})}
    assert manifest.late_records["2026-11-20"].offsets() == {0: 12}
    assert manifest.reconciliation.drifts[1].difference["units"] == -1
    assert [p.range_end for p in manifest.reconciliation.repair_refused] == [13, 13, 10]
    assert manifest.range_ends(manifest.topic) == {0: 13, 1: 13, 2: 10}
    assert manifest.range_ends("another-topic") is None
    assert manifest.timings_seconds.total == 0.473


def test_a_version_1_manifest_decodes_with_the_defaults_of_later_fields() -> None:
    content, path = _fixture(1)
    manifest = decode(content, DAY, path)

    assert manifest.manifest_version == 1
    assert (manifest.revision, manifest.revision_reason) == (1, None)
    assert manifest.late_records == {}
    assert manifest.missing == []
    assert manifest.reconciliation.repair_refused == []
    assert [part.case for part in manifest.partitions] == ["records"] * 3
    assert manifest.counts.dedup_set_bytes == 0
    assert manifest.summary() == _decoded(2).summary()


def test_a_manifest_is_written_and_read_back_through_the_data_folder(tmp_path: Path) -> None:
    manifest = _decoded(3)
    assert read_manifest(tmp_path, DAY) is None

    path = write_manifest(tmp_path, manifest)

    assert path == parquet.manifest_path(tmp_path, DAY)
    assert read_manifest(tmp_path, DAY) == manifest
    assert parquet.read_manifest_bytes(tmp_path, DAY) == _fixture(3)[0]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "malformed"),
        (b'{"manifest_version": 2, "day": "2026-11-21"}', "missing required field"),
        (b"", "truncated"),
    ],
)
def test_a_manifest_that_does_not_decode_names_its_file_and_the_fix(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    parquet.write_manifest_bytes(tmp_path, DAY, content)

    with pytest.raises(ManifestUnreadable) as unreadable:
        read_manifest(tmp_path, DAY)

    message = str(unreadable.value)
    assert str(parquet.manifest_path(tmp_path, DAY)) in message
    assert problem in message.lower()
    assert "kassa daily run --day 2026-11-21" in message


def test_a_manifest_of_a_newer_version_is_refused_with_the_fix() -> None:
    manifest = _decoded(2)
    newer = msgspec.structs.replace(manifest, manifest_version=MANIFEST_VERSION + 1)

    with pytest.raises(
        ManifestUnreadable, match=r"newer than the 3 this kassa reads \(upgrade kassa"
    ):
        decode(encode(newer), DAY, FIXTURES / "newer.json")


def test_the_totals_have_the_fields_of_the_day_totals() -> None:
    assert set(Totals.__struct_fields__) == set(TOTALS)


COUNT = st.integers(min_value=0, max_value=2**53)
SECONDS = st.floats(min_value=0, max_value=1e6, allow_nan=False)
TOTAL_UNITS = st.fixed_dictionaries(
    {name: st.integers(min_value=-(2**53), max_value=2**53) for name in TOTALS}
)


@given(TOTAL_UNITS)
def test_totals_keep_money_units_exactly(units: dict[str, int]) -> None:
    assert Totals.of(units).in_units() == units


@given(
    totals=TOTAL_UNITS,
    counts=st.builds(
        Counts,
        records=COUNT,
        duplicates=COUNT,
        invalid=st.dictionaries(st.text(), COUNT, max_size=3),
        dedup_set_bytes=COUNT,
    ),
    timings=st.builds(Timings, plan=SECONDS, total=SECONDS),
    text=st.text(),
    late=st.dictionaries(
        st.dates().map(date.isoformat),
        st.builds(
            LateEntry,
            records=COUNT,
            reach=st.dictionaries(st.integers(0, 999).map(str), COUNT, max_size=3),
        ),
        max_size=3,
    ),
    hours=st.sampled_from([23.0, 24.0, 25.0]),
)
def test_any_manifest_decodes_to_itself(  # noqa: PLR0917 - one argument per varied field
    totals: dict[str, int],
    counts: Counts,
    timings: Timings,
    text: str,
    late: dict[str, LateEntry],
    hours: float,
) -> None:
    manifest = msgspec.structs.replace(
        _decoded(2),
        totals=Totals.of(totals),
        counts=counts,
        timings_seconds=timings,
        revision_reason=text,
        topic=text,
        late_records=late,
        hours=hours,
    )
    assert decode(encode(manifest), DAY, FIXTURES) == manifest


def test_a_manifest_is_frozen() -> None:
    manifest: Manifest = _decoded(2)
    with pytest.raises(AttributeError):
        manifest.revision = 2  # type: ignore[misc]
