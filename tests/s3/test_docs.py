"""The analyst snippets of ``docs/daily.md`` ("Reading it from object storage"), run as an
analyst would: each in a fresh Python with the S3 client settings of ``client.env`` in its
environment, against the bucket a daily run wrote."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb

from common.settings import Settings
from jobs.daily.job import run_day
from storage.location import ObjectStore, open_store
from tests.helpers import repo_root, settings_env
from tests.jobs.daily.helpers import checkout, expected_of, produce, seal, utc

DAY = date(2026, 11, 21)
"""The day the snippets ask for."""
DOCUMENTED_BASE = "kassa/snapshots"
"""The bucket and prefix the snippets name (``KASSA_DATA_DIR`` of ``kassa services up --s3``)."""


def _snippets() -> list[str]:
    text = (repo_root() / "docs" / "daily.md").read_text()
    section = text.split("\n### Reading it from object storage\n")[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def _duckdb_home(home: Path) -> Path:
    """``home`` with DuckDB's httpfs extension installed as ``INSTALL httpfs`` would, from
    the ``duckdb-ext-httpfs`` package (the tests download nothing)."""
    spec = importlib.util.find_spec("duckdb_ext")
    assert spec is not None and spec.submodule_search_locations, "pip install duckdb-ext-httpfs"
    version = f"v{duckdb.__version__}"
    source = Path(next(iter(spec.submodule_search_locations))) / "extensions" / version
    (platform,) = [folder.name for folder in source.iterdir()]
    target = home / ".duckdb" / "extensions" / version / platform
    target.mkdir(parents=True)
    (target / "httpfs.duckdb_extension").symlink_to(source / platform / "httpfs.duckdb_extension")
    return home


def test_the_polars_pyarrow_and_duckdb_snippets_read_the_bucket(
    s3_settings: Settings, tmp_path: Path
) -> None:
    sales = [
        checkout(
            f"d{n}",
            utc(2026, 11, 21, 9) + timedelta(minutes=5 * n),
            [(f"sku{n % 4}", 1 + n % 2, "1.25")],
            store_id=f"s{n % 3}",
        )
        for n in range(40)
    ]
    produce(s3_settings, sales)
    seal(s3_settings, utc(2026, 11, 23))
    manifest = run_day(s3_settings, DAY).manifest
    store = open_store(s3_settings.data_dir)
    assert isinstance(store, ObjectStore)
    env = settings_env(s3_settings) | {"HOME": str(_duckdb_home(tmp_path / "home"))}
    skus = sorted(expected_of(sales, DAY, s3_settings.zone))

    snippets = _snippets()
    assert len(snippets) == 3, "Polars, pyarrow, DuckDB"
    outputs = []
    for snippet in snippets:
        assert DOCUMENTED_BASE in snippet
        code = snippet.replace(DOCUMENTED_BASE, store.root)
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{snippet}\n{result.stderr}"
        outputs.append(result.stdout)

    polars, pyarrow, duck = outputs
    for sku in skus:
        assert sku in polars and sku in pyarrow and sku in duck
    rows = {name: table.rows for name, table in manifest.tables.items()}
    assert f"{manifest.revision} {rows}" in pyarrow
