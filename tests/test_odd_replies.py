"""Odd replies: each one fails only the unit it hits (re-asked, then `failed` with a kind), the brief
is still written, and the run ends partial (exit 3). Every case goes through the real openai SDK.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.testing import FakeResponse

from .conftest import SEED, read_brief, read_manifest

FAST = ["--max-retries", "0", "--timeout", "5"]
DEEP = 100_000


def completion(choices: Any) -> dict[str, Any]:
    """A chat completion body around `choices`, as a server would send it."""
    return {
        "id": "chatcmpl-odd",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": choices,
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def message(content: Any) -> list[dict[str, Any]]:
    return [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": content, "refusal": None},
        }
    ]


def _with_surrogate(seed_script: dict[str, Any], *, escaped: bool) -> FakeResponse:
    """A rebuttal whose steelman holds a lone surrogate: as a JSON escape inside the content (the
    parsed data carries it), or as a character of the content itself (the raw reply carries it)."""
    rebuttal = json.loads(json.dumps(seed_script["rebuttals"]["C3"]))
    if escaped:
        rebuttal["steelman"] = "PLACEHOLDER"
        return FakeResponse(content=json.dumps(rebuttal).replace("PLACEHOLDER", "\\ud800"))
    rebuttal["steelman"] += "\ud800"
    return FakeResponse(content=json.dumps(rebuttal, ensure_ascii=False))


ODD: dict[str, tuple[Any, str]] = {
    "content-nested-deep": (lambda s: FakeResponse(content="[" * DEEP + "]" * DEEP), "invalid"),
    # Under the size limit, so it reaches the parser (past its recursion limit).
    "content-nested-2000": (lambda s: FakeResponse(content='{"steelman": ' + "[" * 2000 + "]" * 2000 + "}"), "invalid"),
    "body-nested-deep": (
        lambda s: FakeResponse(
            body=b'{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": '
            + b"[" * DEEP
            + b"]" * DEEP
            + b"}"
        ),
        "malformed",
    ),
    "content-huge-integer": (lambda s: FakeResponse(content='{"steelman": ' + "9" * 5000 + "}"), "invalid"),
    "body-huge-integer": (
        lambda s: FakeResponse(
            body='{"id": "x", "object": "chat.completion", "created": ' + "9" * 5000 + ', "model": "m", "choices": []}'
        ),
        "malformed",
    ),
    "surrogate-in-json-string": (lambda s: _with_surrogate(s, escaped=True), "invalid"),
    "surrogate-in-reply-text": (lambda s: _with_surrogate(s, escaped=False), "invalid"),
    "content-is-object": (lambda s: FakeResponse(body=completion(message(s["rebuttals"]["C3"]))), "malformed"),
    "choices-is-string": (lambda s: FakeResponse(body=completion("not a list")), "malformed"),
    "choice-without-message": (lambda s: FakeResponse(body=completion([5])), "malformed"),
    "message-is-string": (
        lambda s: FakeResponse(body=completion([{"index": 0, "finish_reason": "stop", "message": "hi"}])),
        "malformed",
    ),
    "finish-reason-3mb": (
        lambda s: FakeResponse(
            body=completion([{**message(json.dumps(s["rebuttals"]["C3"]))[0], "finish_reason": "x" * 3_000_000}])
        ),
        "malformed",
    ),
    "html-error-page": (
        lambda s: FakeResponse(body="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
        "malformed",
    ),
}


def load(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    brief = read_brief(run_dir)
    manifest = read_manifest(run_dir)
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()]
    return brief, manifest, calls


@pytest.mark.parametrize("case", list(ODD))
def test_odd_reply_fails_only_its_unit(cli, server, seed_script, case: str) -> None:
    make, kind = ODD[case]
    server.script("C3", *[make(seed_script) for _ in range(3)])
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 3, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert len(server.requests_for("C3")) == 3, "re-asked twice, then given up"
    brief, manifest, calls = load(result.run_dir)
    assert brief["status"] == "partial" and manifest["status"] == "partial"
    (claim,) = [c for c in brief["claims"] if c["id"] == "C3"]
    assert claim["status"] == "failed" and claim["error"]["kind"] == kind, claim["error"]
    assert all(c["status"] == "ok" for c in brief["claims"] if c["id"] != "C3")
    assert brief["synthesis"]["status"] == "ok"
    assert [c["outcome"] for c in calls if c["unit"] == "C3"] == [kind] * 3
    assert not (result.run_dir / "units" / "C3.json").exists()
    checked = cli("validate", str(result.run_dir))
    assert checked.exit_code == 0, checked.stdout + checked.stderr


# -- token counts (item 5) --------------------------------------------------------------------

ODD_USAGE = {
    "prompt_tokens": -5,
    "completion_tokens": 12.5,
    "total_tokens": 7.5,
    "prompt_tokens_details": {"cached_tokens": -1},
}


def test_odd_token_counts_are_clamped_noted_and_resumable(cli, server, seed_script) -> None:
    server.script("C2", FakeResponse(content=seed_script["rebuttals"]["C2"], usage=dict(ODD_USAGE)))
    server.script("C3", FakeResponse(status=503))  # one claim fails, so there is something to resume
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 3, result.stderr
    brief, manifest, calls = load(result.run_dir)
    (c2,) = [c for c in calls if c["unit"] == "C2"]
    assert c2["usage"] == {"prompt_tokens": 0, "completion_tokens": 12, "cached_tokens": 0}
    assert c2["usage_clamped"] is True
    assert any("not non-negative whole numbers in 1 call(s)" in note for note in brief["notes"])
    assert all(value >= 0 for value in manifest["usage"]["total"].values())
    assert cli("validate", str(result.run_dir)).exit_code == 0

    # A calls log written before clamping existed holds the endpoint's figures as they came.
    log = result.run_dir / "calls.jsonl"
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    records[0]["usage"] = {"prompt_tokens": -100, "completion_tokens": 0.5, "cached_tokens": -3}
    log.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")

    resumed = cli("run", "--resume", "latest", "--no-cache")
    assert resumed.exit_code == 0, resumed.stderr
    brief, manifest, _ = load(resumed.run_dir)
    assert brief["status"] == "complete" and manifest["status"] == "complete"
    assert any("not non-negative whole numbers in 2 call(s)" in note for note in brief["notes"])
    assert cli("validate", str(resumed.run_dir)).exit_code == 0


# -- size (item 6) ----------------------------------------------------------------------------

MB5 = 5_000_000


def _run_dir_bytes(run_dir: Path) -> int:
    return sum(path.stat().st_size for path in run_dir.rglob("*") if path.is_file())


def _brief_file_sizes(run_dir: Path) -> dict[str, int]:
    return {name: (run_dir / name).stat().st_size for name in ("brief.json", "brief.md", "brief.html")}


def test_a_5mb_invalid_field_is_neither_echoed_nor_stored(cli, server, seed_script) -> None:
    bad = json.loads(json.dumps(seed_script["extract"]))
    bad["claims"][0]["quote"] = "x" * MB5
    server.script("extract", *[bad] * 3)
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 1, result.stderr
    first, reask, _ = server.requests_for("extract")
    sizes = [len(json.dumps(request.body)) for request in (first, reask)]
    error_line = result.stderr.strip().splitlines()[-1]
    files = _brief_file_sizes(result.run_dir)
    total = _run_dir_bytes(result.run_dir)
    print(
        f"\nrequest {sizes[0]:,} B, re-ask {sizes[1]:,} B; stderr line {len(error_line):,} chars; "
        f"brief files {files}; run dir {total:,} B"
    )
    assert sizes[1] - sizes[0] < 10_000, "the re-ask quotes back at most a bounded head and bounded messages"
    assert error_line.startswith("error: Claim extraction failed (invalid): ") and len(error_line) < 1_000
    assert "more than the 48,000 this answer can need" in error_line
    assert all(size < 50_000 for size in files.values()), files
    assert total < 1_000_000
    calls = [json.loads(line) for line in (result.run_dir / "calls.jsonl").read_text().splitlines()]
    assert all(c["raw_chars"] > MB5 and len(c["raw"]) == 64_000 for c in calls), "a head plus the length"


def test_a_long_field_under_the_size_limit_is_quoted_back_briefly(cli, server, seed_script) -> None:
    bad = json.loads(json.dumps(seed_script["rebuttals"]["C3"]))
    bad["steelman"] = "y" * 20_000  # far past the schema's maxLength, within the stage's size limit
    server.script("C3", bad)
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 0, result.stderr
    repair = server.requests_for("C3")[1].body["messages"][-1]["content"]
    print(f"\nrepair message {len(repair):,} chars")
    assert "is too long" in repair and len(repair) < 1_000


def test_a_valid_5mb_reply_of_padding_is_refused_unparsed(cli, server, seed_script) -> None:
    padded = json.dumps(seed_script["rebuttals"]["C3"]) + " " * MB5
    server.script("C3", *[padded] * 3)
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 3, result.stderr
    brief, _, _ = load(result.run_dir)
    (claim,) = [c for c in brief["claims"] if c["id"] == "C3"]
    assert claim["status"] == "failed" and claim["error"]["kind"] == "invalid"
    assert "more than the 32,000 this answer can need" in claim["error"]["message"]
    total = _run_dir_bytes(result.run_dir)
    print(f"\nrun dir {total:,} B; brief files {_brief_file_sizes(result.run_dir)}")
    assert total < 1_000_000
    assert not (result.run_dir / "units" / "C3.json").exists()


@pytest.mark.parametrize("count", ["1e308", "1" + "0" * 400, "1" + "0" * 4000])
def test_absurd_token_counts_are_capped_and_the_run_finishes(cli, server, seed_script, count: str) -> None:
    """A count that would overflow the cost estimate (a float) is capped like any odd figure."""
    body = json.dumps(completion(message(json.dumps(seed_script["rebuttals"]["C2"]))))
    body = body.replace('"prompt_tokens": 10', f'"prompt_tokens": {count}')
    server.script("C2", FakeResponse(body=body))
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 0, result.stderr
    _, manifest, calls = load(result.run_dir)
    (c2,) = [c for c in calls if c["unit"] == "C2"]
    assert c2["usage"]["prompt_tokens"] == 10**9 and c2["usage_clamped"] is True
    assert manifest["status"] == "complete" and manifest["cost"]["usd"] is not None
    assert cli("validate", str(result.run_dir)).exit_code == 0


def test_a_lone_surrogate_anywhere_in_a_reply_is_stored_not_fatal(cli, server, seed_script) -> None:
    """The record's writers, not each field, make text storable: a finish_reason with a lone
    surrogate is kept (escaped) in calls.jsonl and reads back as it came."""
    body = completion([{**message(json.dumps(seed_script["rebuttals"]["C3"]))[0], "finish_reason": "stop\ud800"}])
    server.script("C3", FakeResponse(body=json.dumps(body)))  # ensure_ascii: the body holds the escape
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 0, result.stderr
    _, manifest, calls = load(result.run_dir)
    assert manifest["status"] == "complete"
    (c3,) = [c for c in calls if c["unit"] == "C3"]
    assert c3["finish_reason"] == "stop\ud800"
