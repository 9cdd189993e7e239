"""The allocator tuning is accepted by the C library the job runs on."""

from __future__ import annotations

import platform

import pytest

from jobs.stream.malloc import keep_batch_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_every_setting() -> None:
    assert keep_batch_memory()  # False: mallopt refused a value (e.g. past glibc's maximum)
