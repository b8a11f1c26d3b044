"""Atomic writes: all or nothing, and nothing left behind when a write fails."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipeline.cache import ResponseCache
from pipeline.files import atomic_write


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "brief.json"
    atomic_write(target, "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "half \ud800 written")  # fails inside the write, as a full disk would
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brief.json"]


def test_cache_entries_are_private_and_a_failed_put_leaves_nothing(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = cache.key({"messages": []}, endpoint="http://127.0.0.1:1/v1")
    cache.put(key, {"content": "{}"}, endpoint="http://127.0.0.1:1/v1")
    (entry,) = tmp_path.rglob("*.json")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    with pytest.raises(UnicodeEncodeError):  # not an OSError: a bug, so not swallowed
        cache.put(key, {"content": "\ud800"}, endpoint="http://127.0.0.1:1/v1")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [entry.name]
