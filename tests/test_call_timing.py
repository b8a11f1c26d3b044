"""Time: --timeout bounds a whole call however slowly its body comes, and a server's Retry-After is
honoured in both of its forms (seconds, HTTP date), with retry-after-ms first when it is valid."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from pipeline.llm import MAX_RETRY_AFTER, _retry_after_seconds
from pipeline.testing import FakeResponse

from .conftest import SEED, TEST_KEY, read_brief, run_subprocess

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_timeout_bounds_a_call_whose_body_trickles(server, seed_script, runs_dir: Path) -> None:
    # ~2 KB at one byte per 0.5 s: every read is quick, the whole body would take a quarter of an hour.
    server.script("C3", FakeResponse(content=seed_script["rebuttals"]["C3"], trickle=0.5))
    started = time.monotonic()
    result = run_subprocess(
        [
            "run",
            str(SEED),
            "--base-url",
            server.base_url,
            "--runs-dir",
            str(runs_dir),
            "--timeout",
            "3",
            "--max-retries",
            "0",
        ],
        env={"OPENAI_API_KEY": TEST_KEY},
        timeout=40,
    )
    elapsed = time.monotonic() - started
    print(f"\nrun ended after {elapsed:.1f} s (exit {result.returncode})")
    assert result.returncode == 3, result.stderr
    assert elapsed < 3 + 7, "the run ends within a few seconds of the timeout (it ran past 40 s before)"
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    brief = read_brief(run_dir)
    (claim,) = [c for c in brief["claims"] if c["id"] == "C3"]
    assert claim["status"] == "failed" and claim["error"]["kind"] == "transport"
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()]
    (attempt,) = [c for c in calls if c["unit"] == "C3"]
    assert attempt["outcome"] == "timeout" and 2.9 <= attempt["latency_s"] < 5


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"retry-after": "Sun, 01 Mar 2026 12:00:07 -0000"}, 7.0),  # parses without a zone: still UTC
        ({"retry-after": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),  # already past
        ({"retry-after": format_datetime(NOW + timedelta(hours=2), usegmt=True)}, MAX_RETRY_AFTER),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "nan", "retry-after": format_datetime(NOW + timedelta(seconds=4), usegmt=True)}, 4.0),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after": "next Tuesday"}, None),
        ({}, None),
    ],
    ids=[
        "seconds",
        "http-date",
        "http-date-minus-zero",
        "http-date-past",
        "capped",
        "ms-first",
        "bad-ms-then-seconds",
        "nan-ms-then-date",
        "inf-ms",
        "garbage",
        "none",
    ],
)
def test_retry_after_header(headers: dict[str, str], expected: float | None) -> None:
    assert _retry_after_seconds(headers, now=NOW.timestamp()) == expected


def test_429_with_an_http_date_waits_until_that_time(cli, server) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)  # 1-2 s ahead
    server.script("C3", FakeResponse(status=429, headers={"Retry-After": format_datetime(until, usegmt=True)}))
    result = cli("run", str(SEED), "--max-retries", "2", "--timeout", "10")
    assert result.exit_code == 0, result.stderr
    first, second = server.requests_for("C3")
    to_wall_clock = time.time() - time.monotonic()
    retried_at = second.received + to_wall_clock
    print(
        f"\nfirst try {until.timestamp() - first.received - to_wall_clock:.2f} s before the date, "
        f"retry {retried_at - until.timestamp():+.2f} s after it"
    )
    assert until.timestamp() - 0.05 <= retried_at < until.timestamp() + 1.5


def test_429_with_a_bad_retry_after_ms_still_honours_retry_after(cli, server) -> None:
    server.script("C3", FakeResponse(status=429, headers={"retry-after-ms": "soon", "Retry-After": "2"}))
    result = cli("run", str(SEED), "--max-retries", "2", "--timeout", "10")
    assert result.exit_code == 0, result.stderr
    first, second = server.requests_for("C3")
    waited = second.received - first.received
    print(f"\nretried after {waited:.2f} s")
    assert 1.95 <= waited < 3
