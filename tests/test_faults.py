"""The fault matrix: each endpoint failure, injected at each stage, ends in a documented outcome.

Every case goes through the real openai SDK to FakeOpenAIServer and asserts the exit code,
stderr, the files on disk, and what the server saw.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline import schemas
from pipeline.testing import FakeResponse

from .conftest import SEED, TEST_KEY, read_brief, read_manifest

# One unit per stage: extraction, one claim's rebuttal, synthesis.
UNITS = ["extract", "C3", "synthesize"]
FAST = ["--max-retries", "2", "--timeout", "5"]


def load(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    brief = read_brief(run_dir)
    manifest = read_manifest(run_dir)
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines()]
    return brief, manifest, calls


def unit_status(brief: dict[str, Any], unit: str) -> str:
    if unit == "extract":
        return "ok" if brief["thesis"] else "failed"
    if unit == "synthesize":
        return brief["synthesis"]["status"]
    return next(c["status"] for c in brief["claims"] if c["id"] == unit)


def unit_error(brief: dict[str, Any], unit: str) -> dict[str, Any] | None:
    if unit == "synthesize":
        return brief["synthesis"]["error"]
    return next(c["error"] for c in brief["claims"] if c["id"] == unit)


def assert_recovered(result, server, unit: str, outcome: str) -> list[dict[str, Any]]:
    """The fault was retried or re-asked, and the brief came out complete."""
    assert result.exit_code == 0, result.stderr
    brief, _, calls = load(result.run_dir)
    assert brief["status"] == "complete"
    assert schemas.validate("brief", brief) == []
    unit_calls = [c for c in calls if c["unit"] == unit]
    assert [c["outcome"] for c in unit_calls] == [outcome, "ok"]
    assert len(server.requests_for(unit)) == 2
    return unit_calls


def assert_unit_failed(result, unit: str, kind: str) -> dict[str, Any]:
    """The unit failed after its retries; the outcome depends on which stage it was."""
    assert "Traceback" not in result.stderr
    if unit == "extract":
        assert result.exit_code == 1, result.stderr
        brief, manifest, calls = load(result.run_dir)
        assert brief["status"] == "failed" and brief["claims"] == []
        assert manifest["status"] == "failed"
        assert any(kind in note for note in brief["notes"])
        assert calls, "the calls log must record the failed attempts"
        error = result.stderr.strip().splitlines()[-1]
        assert re.fullmatch(
            rf"error: Claim extraction failed \({kind}\): .*[^.]\. The record is in "
            rf"{re.escape(str(result.run_dir))}; retry with 'counterpoint run --resume "
            rf"{result.run_dir.name} --runs-dir {re.escape(str(result.run_dir.parent))}'",
            error,
        ), error
        return brief
    assert result.exit_code == 3, result.stderr
    brief, manifest, _ = load(result.run_dir)
    assert brief["status"] == "partial" and manifest["status"] == "partial"
    assert unit_error(brief, unit)["kind"] == kind
    others = [c for c in brief["claims"] if c["id"] != unit]
    assert all(c["status"] == "ok" for c in others)
    if unit != "synthesize":
        assert brief["synthesis"]["status"] == "ok", "synthesis runs on what succeeded"
        assert unit in "".join(brief["notes"])
    assert "partial" in result.stderr
    return brief


@pytest.mark.parametrize("unit", UNITS)
def test_429_honours_retry_after(cli, server, unit: str) -> None:
    server.script(unit, FakeResponse(status=429, headers={"Retry-After": "1"}))
    result = cli("run", str(SEED), *FAST)
    assert_recovered(result, server, unit, "http_429")
    first, second = server.requests_for(unit)
    assert second.received - first.received >= 0.95


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("unit", UNITS)
def test_5xx_retried_then_success(cli, server, unit: str, status: int) -> None:
    server.script(unit, FakeResponse(status=status))
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, f"http_{status}")


@pytest.mark.parametrize("unit", UNITS)
def test_5xx_gives_up_after_max_retries(cli, server, unit: str) -> None:
    server.script(unit, *[FakeResponse(status=503)] * 3)
    result = cli("run", str(SEED), "--max-retries", "2", "--reasks", "0")
    assert_unit_failed(result, unit, "transport")
    assert len(server.requests_for(unit)) == 3


@pytest.mark.parametrize("unit", UNITS)
def test_read_timeout_retried(cli, server, unit: str) -> None:
    server.script(unit, FakeResponse(content="{}", delay=3))
    result = cli("run", str(SEED), "--timeout", "0.5", "--max-retries", "2")
    assert_recovered(result, server, unit, "timeout")


@pytest.mark.parametrize("unit", UNITS)
def test_connection_reset_retried(cli, server, unit: str) -> None:
    server.script(unit, FakeResponse(reset=True))
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, "connection_error")


@pytest.mark.parametrize("unit", UNITS)
def test_malformed_json_reasked_with_the_parser_message(cli, server, unit: str) -> None:
    server.script(unit, '{"thesis": "unterminated')
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, "invalid")
    reask = server.requests_for(unit)[1].body["messages"]
    assert reask[-2] == {"role": "assistant", "content": '{"thesis": "unterminated'}
    assert "not valid JSON" in reask[-1]["content"]


@pytest.mark.parametrize("unit", UNITS)
def test_malformed_json_every_time_fails_the_unit(cli, server, unit: str) -> None:
    server.script(unit, *["not json at all"] * 3)
    assert_unit_failed(cli("run", str(SEED), *FAST), unit, "invalid")
    assert len(server.requests_for(unit)) == 3


@pytest.mark.parametrize("unit", UNITS)
def test_schema_violation_reasked_with_validator_messages(cli, server, unit: str) -> None:
    server.script(unit, {"unexpected": True})
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, "invalid")
    repair = server.requests_for(unit)[1].body["messages"][-1]["content"]
    assert "Additional properties are not allowed ('unexpected' was unexpected)" in repair


def _with_bad_quote(seed_script: dict[str, Any], unit: str) -> dict[str, Any]:
    if unit == "extract":
        bad = json.loads(json.dumps(seed_script["extract"]))
        bad["claims"][0]["quote"] = "Putin's main goal was saving Assad."  # a paraphrase
        return bad
    bad = json.loads(json.dumps(seed_script["synthesize"]))
    bad["rhetoric"][0]["quote"] = "anyone who disagrees is delusional"
    return bad


@pytest.mark.parametrize("unit", ["extract", "synthesize"])
def test_quote_not_in_article_is_reasked(cli, server, seed_script, unit: str) -> None:
    server.script(unit, _with_bad_quote(seed_script, unit))
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, "invalid")
    repair = server.requests_for(unit)[1].body["messages"][-1]["content"]
    assert "not found verbatim in the article" in repair


@pytest.mark.parametrize("unit", ["extract", "synthesize"])
def test_quote_never_grounded_fails_the_unit(cli, server, seed_script, unit: str) -> None:
    server.script(unit, *[_with_bad_quote(seed_script, unit)] * 3)
    assert_unit_failed(cli("run", str(SEED), *FAST), unit, "invalid")


def test_claim_stage_rejects_invented_urls(cli, server, seed_script) -> None:
    bad = json.loads(json.dumps(seed_script["rebuttals"]["C3"]))
    bad["rebuttals"][0]["what_to_check"] = ["https://example.com/made-up-study"]
    server.script("C3", bad)
    assert_recovered(cli("run", str(SEED), *FAST), server, "C3", "invalid")


@pytest.mark.parametrize("unit", UNITS)
def test_length_reasks_once_tighter_then_fails(cli, server, unit: str) -> None:
    server.script(
        unit,
        FakeResponse(content='{"cut', finish_reason="length"),
        FakeResponse(content='{"cut', finish_reason="length"),
    )
    assert_unit_failed(cli("run", str(SEED), *FAST), unit, "truncated")
    requests = server.requests_for(unit)
    assert len(requests) == 2
    assert "cut off because it was too long" in requests[1].body["messages"][-1]["content"]


@pytest.mark.parametrize("unit", UNITS)
def test_length_then_success_recovers(cli, server, unit: str) -> None:
    server.script(unit, FakeResponse(content='{"cut', finish_reason="length"))
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, "truncated")


@pytest.mark.parametrize(
    "refusal",
    [FakeResponse(content=None, refusal="I can't help with that."), FakeResponse(content="")],
    ids=["refusal-field", "empty-content"],
)
@pytest.mark.parametrize("unit", UNITS)
def test_refusal_is_a_status_not_a_parse_error(cli, server, unit: str, refusal: FakeResponse) -> None:
    server.script(unit, refusal)
    result = cli("run", str(SEED), *FAST)
    assert len(server.requests_for(unit)) == 1, "a refusal is not retried"
    if unit == "extract":
        assert_unit_failed(result, unit, "refused")
        return
    brief = assert_unit_failed(result, unit, "refused")
    assert unit_status(brief, unit) == "refused"
    assert "**REFUSED** (refused)" in (result.run_dir / "brief.md").read_text()


@pytest.mark.parametrize("unit", UNITS)
def test_empty_choices_reasked(cli, server, unit: str) -> None:
    server.script(unit, FakeResponse(no_choices=True))
    assert_recovered(cli("run", str(SEED), *FAST), server, unit, "empty")


@pytest.mark.parametrize("unit", UNITS)
def test_empty_choices_every_time_fails_the_unit(cli, server, unit: str) -> None:
    server.script(unit, *[FakeResponse(no_choices=True)] * 3)
    assert_unit_failed(cli("run", str(SEED), *FAST), unit, "empty")


@pytest.mark.parametrize("status,fix", [(401, "check OPENAI_API_KEY"), (404, "check --model and --base-url")])
@pytest.mark.parametrize("unit", UNITS)
def test_auth_and_not_found_stop_the_run_without_retry(
    cli, server, runs_dir: Path, unit: str, status: int, fix: str
) -> None:
    server.script(unit, FakeResponse(status=status, error_message=f"Incorrect API key provided: {TEST_KEY}"))
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 1
    assert len(server.requests_for(unit)) == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and fix in last_line
    assert TEST_KEY not in result.stderr + result.stdout
    for path in runs_dir.rglob("*"):
        assert not path.is_file() or TEST_KEY not in path.read_text(), path


@pytest.mark.parametrize("status,fix", [(401, "check OPENAI_API_KEY"), (404, "check --model")])
def test_fatal_error_mid_run_keeps_finished_work(cli, server, runs_dir: Path, status: int, fix: str) -> None:
    server.script("synthesize", FakeResponse(status=status))
    result = cli("run", str(SEED), *FAST)
    assert result.exit_code == 1 and fix in result.stderr
    (run_dir,) = runs_dir.iterdir()
    brief, manifest, _ = load(run_dir)
    assert schemas.validate("brief", brief) == []
    assert [c["status"] for c in brief["claims"]] == ["ok"] * 8, "finished claims are kept"
    assert any("stopped early" in note for note in brief["notes"])
    assert manifest["status"] == "partial"


def test_bad_request_fails_the_unit_without_retry(cli, server) -> None:
    server.script("C3", FakeResponse(status=400, error_message="messages too long"))
    result = cli("run", str(SEED), *FAST)
    brief = assert_unit_failed(result, "C3", "bad_request")
    assert "messages too long" in unit_error(brief, "C3")["message"]
    assert len(server.requests_for("C3")) == 1


def test_max_calls_budget_ends_the_run_cleanly(cli, server) -> None:
    result = cli("run", str(SEED), "--max-calls", "4", "--concurrency", "1")
    assert result.exit_code == 3, result.stderr
    brief, manifest, _ = load(result.run_dir)
    statuses = [c["status"] for c in brief["claims"]]
    assert statuses[:3] == ["ok"] * 3 and set(statuses[3:]) == {"failed"}
    assert brief["claims"][3]["error"]["kind"] == "budget"
    assert brief["synthesis"]["status"] == "failed" and brief["synthesis"]["error"]["kind"] == "budget"
    assert len(server.requests) == 4
    assert manifest["settings"]["max_calls"] == 4


def test_max_calls_exhausted_in_extraction_exits_1(cli, server) -> None:
    server.script("extract", FakeResponse(status=500))
    result = cli("run", str(SEED), "--max-calls", "1")
    assert result.exit_code == 1
    assert "--max-calls" in (result.run_dir / "brief.json").read_text()
    assert len(server.requests) == 1
