"""The daily manifest hash: its fields in Redis and back (pure, no services)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from storage.summaries import ManifestSummary, Published

COUNT = st.integers(min_value=0, max_value=2**53)
SUMMARIES = st.builds(
    ManifestSummary,
    run_id=st.text(min_size=1),
    revision=st.integers(min_value=1, max_value=10_000),
    complete=st.booleans(),
    forced=st.booleans(),
    checkouts=COUNT,
    lines=COUNT,
    revenue=st.decimals(
        min_value=-(10**14), max_value=10**14, places=4, allow_nan=False, allow_infinity=False
    ),
    finished_at=st.text(min_size=1),
    code_version=st.text(min_size=1),
)


def _as_redis_returns(fields: dict[str, str | int]) -> dict[bytes, bytes]:
    """``fields`` as ``HGETALL`` returns them once stored."""
    return {
        name.encode(): str(value).encode() if isinstance(value, int) else value.encode()
        for name, value in fields.items()
    }


@given(SUMMARIES)
def test_a_summary_reads_back_from_its_redis_fields(summary: ManifestSummary) -> None:
    stored = _as_redis_returns(summary.to_redis())
    assert ManifestSummary.from_redis(stored) == summary
    assert summary.published == Published(summary.revision, summary.run_id)


def test_the_redis_fields_are_the_documented_ones() -> None:
    summary = ManifestSummary(
        run_id="6f1c0d2e",
        revision=2,
        complete=True,
        forced=False,
        checkouts=1390,
        lines=2412,
        revenue=Decimal("58635.5600"),
        finished_at="2026-11-21T02:31:07+00:00",
        code_version="0.1.0",
    )
    assert summary.to_redis() == {
        "run_id": "6f1c0d2e",
        "complete": 1,
        "forced": 0,
        "revision": 2,
        "checkouts": 1390,
        "lines": 2412,
        "revenue": 586355600,
        "finished_at": "2026-11-21T02:31:07+00:00",
        "code_version": "0.1.0",
    }
    assert summary.as_json()["revenue"] == "58635.5600"


def test_an_absent_or_partial_hash_has_no_summary() -> None:
    assert ManifestSummary.from_redis({}) is None
    assert ManifestSummary.from_redis({b"run_id": b"6f1c0d2e", b"revision": b"1"}) is None
