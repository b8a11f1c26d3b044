"""Atomic writes: all or nothing, nothing left behind when a write fails, any text storable."""

from __future__ import annotations

import json
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cache import ResponseCache
from pipeline.files import atomic_write, json_text

ENDPOINT = "http://127.0.0.1:1/v1"


@pytest.fixture
def file_size_limit() -> Iterator[int]:
    """Writes past 4 KiB fail with EFBIG, as a full disk fails them (a real OS error, no mock)."""
    limit = 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path, file_size_limit: int) -> None:
    target = tmp_path / "brief.json"
    atomic_write(target, "old")
    with pytest.raises(OSError):
        atomic_write(target, "x" * (2 * file_size_limit))
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brief.json"]


def test_a_cache_entry_that_cannot_be_written_is_skipped_and_leaves_nothing(
    tmp_path: Path, file_size_limit: int
) -> None:
    cache = ResponseCache(tmp_path)
    key = cache.key({"messages": []}, endpoint=ENDPOINT)
    cache.put(key, {"content": "x" * (2 * file_size_limit)}, endpoint=ENDPOINT)  # no exception: skipped
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_cache_entries_are_private_and_hold_any_text(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = cache.key({"messages": []}, endpoint=ENDPOINT)
    cache.put(key, {"content": "a lone \ud800 surrogate"}, endpoint=ENDPOINT)
    (entry,) = tmp_path.rglob("*.json")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert cache.get(key, endpoint=ENDPOINT) == {
        "content": "a lone \ud800 surrogate",
        "finish_reason": None,
        "refusal": None,
    }


def test_json_text_escapes_lone_surrogates_and_reads_back_the_same() -> None:
    data = {"raw": "ok \ud800 \\ and \udfff", "é": "日本"}
    text = json_text(data)
    assert text.encode("utf-8")  # storable
    assert "é" in text and "日本" in text  # readable text stays as it is
    assert json.loads(text) == data
