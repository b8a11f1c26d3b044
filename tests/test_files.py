"""Atomic writes: all or nothing, nothing left behind when a write fails, any text storable."""

from __future__ import annotations

import errno
import json
import stat
import subprocess
import sys
from pathlib import Path

from pipeline.cache import ResponseCache
from pipeline.files import atomic_write, json_text

ENDPOINT = "http://127.0.0.1:1/v1"


LIMITED_WRITE = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error (EFBIG), as a full disk gives, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
folder, what = Path(sys.argv[1]), sys.argv[2]
if what == "file":
    from pipeline.files import atomic_write
    try:
        atomic_write(folder / "brief.json", "x" * 10_000)
    except OSError as exc:
        print(exc.errno)
else:
    from pipeline.cache import ResponseCache
    cache = ResponseCache(folder)
    cache.put(cache.key({"messages": []}, endpoint="E"), {"content": "x" * 10_000}, endpoint="E")
    print("skipped")
"""


def write_past_the_limit(folder: Path, what: str) -> str:
    """Run a write in a child whose files may not grow past 4 KiB: a real OS failure, and one that
    cannot reach pytest's own output (a limit set in this process would)."""
    done = subprocess.run(
        [sys.executable, "-c", LIMITED_WRITE, str(folder), what],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "brief.json"
    atomic_write(target, "old")
    assert write_past_the_limit(tmp_path, "file") == str(errno.EFBIG)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brief.json"]


def test_a_cache_entry_that_cannot_be_written_is_skipped_and_leaves_nothing(tmp_path: Path) -> None:
    assert write_past_the_limit(tmp_path, "cache") == "skipped"
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
