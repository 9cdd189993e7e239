"""The key tables of ``storage/keys.py`` and ``docs/stream.md`` are what the key builders build."""

from __future__ import annotations

import inspect
import re
from datetime import date
from pathlib import Path

import pytest
from redis.crc import key_slot

from storage import daily, keys
from storage.figures import RANKED_BY

DOCS = Path(__file__).parents[2] / "docs" / "stream.md"
SPACE, STORE, TOKEN = "sp1", "s7", "0f3a"
DAY, FIRST = date(2026, 11, 21), date(2026, 11, 20)
PLACEHOLDERS = {
    "sp": keys.tagged(SPACE),
    "src": "live",
    "D": DAY.isoformat(),
    "D1": FIRST.isoformat(),
    "D2": DAY.isoformat(),
    "S": STORE,
    "by": "revenue",
    "token": TOKEN,
    "key": keys.names_key(SPACE),
}
"""What each ``{placeholder}`` of a table's key pattern stands for in :func:`_built` (the key
space in its braces: the tables' ``{sp}`` is ``{sales}``)."""
NOT_KEYS = {
    "tagged",
    "space_pattern",
    "source_prefix",
    "day_scope",
    "day_pattern",
    "floor_field",
    "expire_at",
}
"""Public functions of :mod:`storage.keys` that build a prefix, a pattern, a field or a time."""
FIXED_TTLS = {
    "temporary_key": daily.TEMPORARY_TTL_SECONDS,
    "combined_ranking_key": keys.COMBINED_RANKING_TTL_SECONDS,
}
"""The keys that expire after a fixed time, in seconds."""
UNITS = {"s": 1, "seconds": 1, "h": 3600, "hour": 3600, "hours": 3600}


def _built() -> dict[str, set[str]]:
    """The keys each builder (and :data:`keys.DEMO_DATABASE`) builds for the placeholders."""
    sources: tuple[keys.Source, ...] = ("live", "daily")
    return {
        "day_key": {
            keys.day_key(SPACE, ns, DAY, measure, store)
            for ns in sources
            for measure in keys.MEASURES
            for store in (None, STORE)
        },
        "stores_key": {keys.stores_key(SPACE, ns, DAY) for ns in sources},
        "manifest_key": {keys.manifest_key(SPACE, DAY)},
        "names_key": {keys.names_key(SPACE)},
        "applied_offsets_key": {keys.applied_offsets_key(SPACE)},
        "dead_letters_key": {keys.dead_letters_key(SPACE)},
        "day_lock_key": {keys.day_lock_key(SPACE, DAY)},
        "temporary_key": {keys.temporary_key(keys.names_key(SPACE), TOKEN)},
        "combined_ranking_key": {
            keys.combined_ranking_key(SPACE, ns, FIRST, DAY, by, store)
            for ns in sources
            for by in RANKED_BY
            for store in (None, STORE)
        },
        "DEMO_DATABASE": {keys.DEMO_DATABASE},
    }


def _module_rows() -> list[tuple[str, str, str, str]]:
    """``(key, type, TTL, meaning)`` of each row of the module's table (an RST simple table)."""
    lines = (keys.__doc__ or "").splitlines()
    borders = [n for n, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line)]
    assert len(borders) == 3, "the module docstring has one table with a header"
    spans = [m.span() for m in re.finditer("=+", lines[borders[0]])]
    rows: list[list[str]] = []
    for line in lines[borders[1] + 1 : borders[2]]:
        cells = [line[start:end].strip() for start, end in spans[:-1]]
        cells.append(line[spans[-1][0] :].strip())
        if cells[0]:
            rows.append(cells)
        else:
            assert not any(cells[:-1]), f"only the meaning continues on a line: {line!r}"
            rows[-1][-1] = f"{rows[-1][-1]} {cells[-1]}"
    return [(key, kind, ttl, meaning) for key, kind, ttl, meaning in rows]


def _docs_rows() -> list[tuple[str, str, str, str]]:
    """``(key, type, TTL, meaning)`` of each row of ``docs/stream.md``'s Redis layout table."""
    section = DOCS.read_text().split("\n## Redis layout\n")[1].split("\n## ")[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            key, kind, meaning, ttl = (cell.strip() for cell in line.strip("|").split(" | "))
            rows.append((key.strip("`"), kind, ttl, meaning))
    return rows


def _builder(meaning: str) -> str:
    found = re.match(r"``(\w+)``: ", meaning)
    assert found, f"the meaning {meaning!r} starts with its builder, ``name``: ..."
    return found[1]


def test_every_key_builder_has_a_row() -> None:
    public = {
        name
        for name, function in inspect.getmembers(keys, inspect.isfunction)
        if function.__module__ == keys.__name__ and not name.startswith("_")
    }
    assert public - NOT_KEYS == set(_built()) - {"DEMO_DATABASE"}
    assert {_builder(meaning) for *_, meaning in _module_rows()} == set(_built())


@pytest.mark.parametrize("row", _module_rows(), ids=lambda row: row[0])
def test_each_row_is_what_its_builder_builds(row: tuple[str, str, str, str]) -> None:
    key, _, ttl, meaning = row
    assert key.format(**PLACEHOLDERS) in _built()[_builder(meaning)]
    per_day = "{D}" in key and ttl != "lock"
    assert (ttl == "day") == per_day, "per-day keys, and only they, expire with the day"


def test_every_key_of_a_key_space_shares_one_hash_slot() -> None:
    built = {key for name, found in _built().items() if name != "DEMO_DATABASE" for key in found}
    assert {key_slot(key.encode()) for key in built} == {key_slot(keys.tagged(SPACE).encode())}
    assert key_slot(keys.names_key(SPACE).encode()) != key_slot(keys.names_key("sp2").encode())


def test_every_measure_has_a_row() -> None:
    measures = [
        key.rsplit(":", 1)[1] for key, *_, meaning in _module_rows() if "day_key" in meaning
    ]
    assert measures == list(keys.MEASURES)


def test_a_store_scope_follows_the_day_or_precedes_the_ranked_figure() -> None:
    for measure in keys.MEASURES:
        chain = keys.day_key(SPACE, "live", DAY, measure)
        assert keys.day_key(SPACE, "live", DAY, measure, STORE) == chain.replace(
            f":{DAY}:", f":{DAY}:store:{STORE}:"
        )
    for by in RANKED_BY:
        chain = keys.combined_ranking_key(SPACE, "live", FIRST, DAY, by)
        store = keys.combined_ranking_key(SPACE, "live", FIRST, DAY, by, STORE)
        assert store == f"{chain.removesuffix(by)}store:{STORE}:{by}"


def _ttl(text: str) -> str | int:
    """A table's TTL: ``"day"``, ``"none"`` or seconds (``docs/stream.md``'s words too)."""
    if text in ("day", "same") or text.startswith("`KASSA_RETENTION_DAYS` after"):
        return "day"
    if text in ("none", "lock") or text.startswith("`KASSA_DAILY_LOCK_SECONDS`"):
        return "none" if text == "none" else "lock"
    count, unit = text.split()
    return int(count) * UNITS[unit]


def test_fixed_ttls_are_the_code_s() -> None:
    fixed = {
        _builder(meaning): _ttl(ttl)
        for _, _, ttl, meaning in _module_rows()
        if ttl not in ("day", "none", "lock")
    }
    assert fixed == FIXED_TTLS


def test_the_watermark_hash_row_names_its_fields() -> None:
    (meaning,) = (m for key, *_, m in _module_rows() if "applied_offsets_key" in m)
    fields = [
        *keys.IDENTITY_FIELDS,
        keys.FLOOR_DAY_FIELD,
        f"{keys.FLOOR_FIELD_PREFIX}{{partition}}",
    ]
    for field in fields:
        assert field in meaning
    (docs,) = (m for key, *_, m in _docs_rows() if key == "kassa:{sp}:live:applied")
    for field in fields:
        assert f"`{field}`" in docs


def test_the_docs_table_agrees_with_the_module_table() -> None:
    module = {key: (kind, _ttl(ttl)) for key, kind, ttl, _ in _module_rows()}
    docs: dict[str, tuple[str, str | int]] = {}
    for key, kind, ttl, _ in _docs_rows():
        if kind == "as above":  # the store scope of the day keys: kassa:{sp}:{src}:{D}:store:{S}:*
            for measure in keys.MEASURES:
                stored = key.replace("*", measure).format(**PLACEHOLDERS)
                assert stored in _built()["day_key"]
            continue
        docs[key] = (kind, _ttl(ttl))
    assert docs == module
