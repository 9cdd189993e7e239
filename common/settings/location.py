"""Where the daily job's Parquet snapshots live: ``KASSA_DATA_DIR``, a local folder or the URI
of an object store (:data:`DataLocation`).

A local path (or ``file:///abs/path``) stays a :class:`~pathlib.Path`; ``s3://``, ``gs://``
(``gcs://``) and ``abfs://`` (``abfss://``) URIs stay text (:data:`DataUrl`) and are opened
through ``pyarrow.fs`` (:mod:`storage.location`). Any other scheme is refused when the
settings are read, naming the value and the accepted forms: without that, ``s3://bucket/p``
given to a ``Path`` silently became the local folder ``s3:/bucket/p``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, NewType
from urllib.parse import unquote, urlsplit

from common.redaction import redacted

DataUrl = NewType("DataUrl", str)
"""The URI of an object-store location (``s3://bucket/prefix?endpoint_override=...``)."""
DataLocation = Path | DataUrl
"""A local folder, or an object-store location."""

OBJECT_STORE_SCHEMES: Final = ("s3", "gs", "gcs", "abfs", "abfss")
"""The URI schemes whose filesystem pyarrow ships (S3 and S3-compatible stores, Google Cloud
Storage, Azure Data Lake / Blob Storage)."""
ACCEPTED_FORMS: Final = (
    "a local folder (./data, /srv/kassa/data, file:///srv/kassa/data), "
    "s3://BUCKET/PREFIX (S3 or an S3-compatible store: add ?endpoint_override=HOST:PORT"
    "&scheme=http&region=REGION), gs://BUCKET/PREFIX or abfs://CONTAINER@ACCOUNT.dfs.core."
    "windows.net/PREFIX"
)


def parse_location(value: object) -> object:
    """``value`` (a ``KASSA_DATA_DIR``) as a :data:`DataLocation`; anything that is not text
    is left to the field's own validation.

    Raises :class:`ValueError` (the settings' message) for an unknown scheme or an object-store
    URI without a bucket.
    """
    if not isinstance(value, str):
        return value
    if "://" not in value:
        return Path(value)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Path(unquote(parts.path))
    if scheme not in OBJECT_STORE_SCHEMES:
        msg = f"the scheme {parts.scheme!r} is not one kassa writes to; accepted: {ACCEPTED_FORMS}"
        raise ValueError(msg)
    if not parts.netloc:
        msg = f"it names no bucket (write {scheme}://BUCKET/PREFIX); accepted: {ACCEPTED_FORMS}"
        raise ValueError(msg)
    return DataUrl(value.rstrip("/") if not parts.query else value)


def is_local(location: DataLocation) -> bool:
    """Whether ``location`` is a folder on this machine's disks."""
    return isinstance(location, Path)


def shown_location(location: DataLocation) -> str:
    """``location`` as a message or a log line shows it (a URI without its password)."""
    return str(location) if isinstance(location, Path) else redacted(location)
