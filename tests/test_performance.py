"""Performance behaviour: concurrency, order, back-off, prompt layout, response cache, accounting, start-up.

These are behaviour tests, not timing tests: they assert what the fake server saw (which requests
overlapped, in what order, how many) and what the run recorded. The only clock readings are the
server's own arrival and answer times, compared with each other with generous margins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.engine import SCHEMA_NAMES
from pipeline.pricing import PRICES_PER_MILLION
from pipeline.testing import FakeOpenAIServer, FakeResponse, ReceivedRequest, max_in_flight, scripted_handler

from .conftest import ROOT, SEED, TEST_KEY, read_brief, read_manifest

CLAIMS = [f"C{n}" for n in range(1, 9)]
UNITS = ["extract", *CLAIMS, "synthesize"]


def load(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    brief = read_brief(run_dir)
    manifest = read_manifest(run_dir)
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines()]
    return brief, manifest, calls


def stage_of(unit: str) -> str:
    return unit if unit in ("extract", "synthesize") else "rebut"


def reported(requests: list[ReceivedRequest]) -> dict[str, int]:
    """What the server told the client it used, summed (a request answered with an error reports nothing)."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
    for request in requests:
        if request.reply_usage:
            usage["prompt_tokens"] += request.reply_usage["prompt_tokens"]
            usage["completion_tokens"] += request.reply_usage["completion_tokens"]
            usage["cached_tokens"] += request.reply_usage["prompt_tokens_details"]["cached_tokens"]
    return usage


def run_against(cli, fake: FakeOpenAIServer, *args: str, **kwargs: Any):
    return cli("run", str(SEED), "--base-url", fake.base_url, *args, endpoint=False, **kwargs)


# -- the concurrent per-claim stage ------------------------------------------------------------


def test_claims_keep_extraction_order_when_they_finish_in_reverse(cli, server, seed_script) -> None:
    for n, claim in enumerate(CLAIMS):
        server.script(claim, FakeResponse(content=seed_script["rebuttals"][claim], delay=0.25 * (len(CLAIMS) - n)))
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    finished = sorted((r for r in server.requests if r.unit in CLAIMS), key=lambda r: r.answered)
    assert [r.unit for r in finished] == CLAIMS[::-1], "the script makes the claims finish in reverse"
    brief, _, calls = load(result.run_dir)
    assert [c["unit"] for c in calls if c["stage"] == "rebut"] == CLAIMS[::-1], "the log is in finish order"
    assert [c["id"] for c in brief["claims"]] == CLAIMS
    assert [c["text"] for c in brief["claims"]] == [c["text"] for c in seed_script["extract"]["claims"]]
    markdown = (result.run_dir / "brief.md").read_text()
    positions = [markdown.index(claim["text"]) for claim in seed_script["extract"]["claims"]]
    assert positions == sorted(positions)


def test_per_claim_calls_overlap_at_the_default_concurrency(cli, server) -> None:
    server.latency = 0.6
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    claims = [r for r in server.requests if r.unit in CLAIMS]
    assert max_in_flight(claims) == 8
    assert max_in_flight(server.requests) == 8
    _, manifest, _ = load(result.run_dir)
    assert manifest["settings"]["concurrency"] == 8


@pytest.mark.parametrize(
    "args,env,limit",
    [
        (["--concurrency", "1"], {}, 1),
        (["--concurrency", "3"], {}, 3),
        ([], {"COUNTERPOINT_CONCURRENCY": "2"}, 2),
    ],
    ids=["option-1", "option-3", "env-2"],
)
def test_concurrency_limits_requests_in_flight(cli, server, args: list[str], env: dict[str, str], limit: int) -> None:
    server.latency = 0.2
    result = cli("run", str(SEED), *args, env=env)
    assert result.exit_code == 0, result.stderr
    assert len(server.requests) == 10
    assert max_in_flight(server.requests) == limit
    _, manifest, _ = load(result.run_dir)
    assert manifest["settings"]["concurrency"] == limit


def test_a_claim_being_reasked_and_retried_does_not_hold_up_the_others(cli, server) -> None:
    server.latency = 0.3
    server.script("C1", {"unexpected": True}, FakeResponse(status=500, headers={"Retry-After": "1"}))
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    _first, reask, retry = server.requests_for("C1")
    others = [r for r in server.requests if r.unit in CLAIMS[1:]]
    assert len(others) == 7
    assert max(r.answered for r in others) < retry.received, "the others finished while C1 waited to retry"
    assert retry.received - reask.answered >= 0.9, "C1 honoured Retry-After"
    brief, _, calls = load(result.run_dir)
    assert [c["outcome"] for c in calls if c["unit"] == "C1"] == ["invalid", "http_500", "ok"]
    assert all(c["status"] == "ok" for c in brief["claims"])


def test_a_unit_waiting_to_retry_gives_up_its_slot(cli, server) -> None:
    """With one slot, C1's re-ask and retry queue behind the other claims instead of blocking them."""
    server.script("C1", {"unexpected": True}, FakeResponse(status=500, headers={"Retry-After": "1"}))
    result = cli("run", str(SEED), "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    assert [r.unit for r in server.requests] == ["extract", *CLAIMS, "C1", "C1", "synthesize"]
    assert max_in_flight(server.requests) == 1


def storm_handler(answer: Callable[[str, dict[str, Any]], Any], seconds: float, retry_after: str):
    """429 with Retry-After to every request for `seconds` from the first per-claim request."""
    started: list[float] = []
    lock = threading.Lock()

    def handler(unit: str, body: dict[str, Any]) -> Any:
        if unit in CLAIMS:
            with lock:
                started[:] = started or [time.monotonic()]
            if time.monotonic() - started[0] < seconds:
                return FakeResponse(status=429, headers={"Retry-After": retry_after})
        return answer(unit, body)

    return handler


def test_a_429_storm_is_waited_out_without_hammering_the_endpoint(cli, seed_script) -> None:
    storm, retry_after = 2.5, 1.0
    with FakeOpenAIServer(storm_handler(scripted_handler(seed_script), storm, "1")) as fake:
        result = run_against(cli, fake)
    assert result.exit_code == 0, result.stderr
    brief, _, calls = load(result.run_dir)
    assert all(c["status"] == "ok" for c in brief["claims"])
    claims = [r for r in fake.requests if r.unit in CLAIMS]
    start = claims[0].received
    refused = [r for r in claims if r.status == 429]
    # Eight at once when the storm starts, then one probe per Retry-After (not eight per Retry-After).
    assert len(refused) <= len(CLAIMS) + storm / retry_after + 1, [round(r.received - start, 2) for r in claims]
    for request in claims:
        if request.received - start < 0.5:
            continue  # the first burst, sent before any 429 came back
        last_429 = max(r.answered for r in refused if r.answered <= request.received)
        assert request.received - last_429 >= 0.9 * retry_after, "a request came before Retry-After elapsed"
    assert sum(1 for c in calls if c["outcome"] == "http_429") == len(refused)
    assert {r.unit for r in claims if r.status == 200} == set(CLAIMS)


# -- prompt layout for provider prefix caching -----------------------------------------------


def test_every_request_starts_with_the_same_prefix_and_ends_with_the_claim(cli, server, seed_script) -> None:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    bodies = {r.unit: r.body["messages"] for r in server.requests}
    system, article = bodies["extract"][:2]
    assert system["role"] == "system" and article["role"] == "user"
    assert "<<<ARTICLE " in article["content"] and "Putin" in article["content"]
    for unit in UNITS:
        assert bodies[unit][:2] == [system, article], unit
    claim_prompts = [json.dumps(bodies[claim]) for claim in CLAIMS]
    shared = len(os.path.commonprefix(claim_prompts))
    shared_task = len(os.path.commonprefix([bodies[claim][-1]["content"] for claim in CLAIMS]))
    for claim, prompt in zip(seed_script["extract"]["claims"], claim_prompts, strict=False):
        assert shared / len(prompt) >= 0.8, f"{claim['id']}: only {shared / len(prompt):.0%} shared"
        assert len(bodies[claim["id"]]) == 3
        task = bodies[claim["id"]][-1]["content"]
        specific = task[shared_task:]  # the claim-specific part is the tail of the last message
        assert claim["text"] in specific and "The author's words:" in specific  # and the quote
        assert len(specific) < 0.3 * len(task), "the task's instructions come before the claim"


def test_provider_cached_tokens_are_recorded_per_attempt_stage_and_run(cli, seed_script) -> None:
    with FakeOpenAIServer(scripted_handler(seed_script), prefix_cache=True) as fake:
        result = run_against(cli, fake)
    assert result.exit_code == 0, result.stderr
    _, manifest, calls = load(result.run_dir)
    for request in fake.requests:
        if request.unit in CLAIMS:  # each claim's request reuses the system + article extraction sent
            shared_prefix = len(json.dumps(request.body["messages"][:2])) - 1  # without the closing "]"
            assert request.reply_usage["prompt_tokens_details"]["cached_tokens"] >= shared_prefix // 4
    assert manifest["usage"]["total"]["cached_tokens"] == reported(fake.requests)["cached_tokens"] > 0
    for stage in ("extract", "rebut", "synthesize"):
        expected = reported([r for r in fake.requests if stage_of(r.unit) == stage])["cached_tokens"]
        assert manifest["usage"]["by_stage"][stage]["cached_tokens"] == expected
    for unit in UNITS:
        (request,) = fake.requests_for(unit)
        (call,) = [c for c in calls if c["unit"] == unit]
        assert call["usage"]["cached_tokens"] == request.reply_usage["prompt_tokens_details"]["cached_tokens"]


# -- accounting ------------------------------------------------------------------------------


def test_tokens_per_stage_and_attempt_equal_what_the_server_reported(cli, seed_script) -> None:
    with FakeOpenAIServer(scripted_handler(seed_script), prefix_cache=True) as fake:
        fake.script("C2", {"unexpected": True})  # answered with usage, then re-asked
        fake.script("C3", FakeResponse(status=500))  # no usage, then retried
        fake.script("synthesize", "not json")
        result = run_against(cli, fake, "--model", "gpt-4.1-mini")
    assert result.exit_code == 0, result.stderr
    _, manifest, calls = load(result.run_dir)
    assert len(calls) == len(fake.requests) == 13
    for unit in UNITS:
        sent = [r.reply_usage for r in fake.requests_for(unit)]
        expected = [
            {
                "prompt_tokens": u["prompt_tokens"],
                "completion_tokens": u["completion_tokens"],
                "cached_tokens": u["prompt_tokens_details"]["cached_tokens"],
            }
            if u
            else {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
            for u in sent
        ]
        assert [c["usage"] for c in calls if c["unit"] == unit] == expected, unit
    failed = next(c for c in calls if c["unit"] == "C2")
    assert failed["outcome"] == "invalid" and failed["usage"]["completion_tokens"] > 0
    by_stage = manifest["usage"]["by_stage"]
    for stage in ("extract", "rebut", "synthesize"):
        requests = [r for r in fake.requests if stage_of(r.unit) == stage]
        assert {k: by_stage[stage][k] for k in reported([])} == reported(requests), stage
        assert by_stage[stage]["calls"] == len(requests) and by_stage[stage]["cache_hits"] == 0
    total = reported(fake.requests)
    assert {k: manifest["usage"]["total"][k] for k in total} == total

    input_price, cached_price, output_price = PRICES_PER_MILLION["gpt-4.1-mini"]
    expected_cost = (
        (total["prompt_tokens"] - total["cached_tokens"]) * input_price
        + total["cached_tokens"] * cached_price
        + total["completion_tokens"] * output_price
    ) / 1e6
    assert manifest["cost"]["status"] == "priced"
    assert manifest["cost"]["usd"] == pytest.approx(expected_cost, abs=1e-6)
    assert manifest["summary"]["cost_usd"] == manifest["cost"]["usd"]
    assert f"cost ${manifest['cost']['usd']:.4f}" in result.stderr
    assert f"{total['prompt_tokens']:,} prompt + {total['completion_tokens']:,} completion" in result.stderr
    assert f"({total['cached_tokens']:,} cached)" in result.stderr


def test_a_model_outside_the_price_table_is_unpriced_never_zero(cli, server, runs_dir: Path) -> None:
    result = cli("run", str(SEED), "--model", "acme-chat-7b")
    assert result.exit_code == 0, result.stderr
    brief, manifest, _ = load(result.run_dir)
    assert manifest["usage"]["total"]["prompt_tokens"] > 0
    assert manifest["cost"]["usd"] is None and manifest["cost"]["status"] == "unpriced"
    assert manifest["summary"]["cost_usd"] is None and manifest["summary"]["cost_status"] == "unpriced"
    assert brief["run"]["cost_usd"] is None and brief["run"]["cost_status"] == "unpriced"
    assert "cost unpriced" in result.stderr and "$0" not in result.stderr
    listing = cli("runs", "--runs-dir", str(runs_dir))
    assert "unpriced" in listing.stdout and "$0" not in listing.stdout


# -- the response cache ----------------------------------------------------------------------


def cache_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json")) if directory.exists() else []


def test_a_rerun_is_answered_from_the_cache_with_zero_requests(cli, server, tmp_path: Path) -> None:
    first = cli("run", str(SEED))
    assert first.exit_code == 0 and len(server.requests) == 10
    assert len(cache_files(tmp_path / "cache")) == 10
    second = cli("run", str(SEED))
    assert second.exit_code == 0, second.stderr
    assert len(server.requests) == 10, "the rerun made no model call"
    brief, manifest, calls = load(second.run_dir)
    assert manifest["cache"]["hits"] == 10
    assert manifest["cache"]["hit_units"] == sorted(UNITS)
    assert manifest["usage"]["total"]["calls"] == 0 and manifest["usage"]["total"]["prompt_tokens"] == 0
    assert all(c["cache_hit"] and c["outcome"] == "ok" for c in calls) and len(calls) == 10
    first_brief, first_manifest, _ = load(first.run_dir)
    assert brief["claims"] == first_brief["claims"] and brief["synthesis"] == first_brief["synthesis"]
    assert first_manifest["cache"]["hits"] == 0


def test_no_cache_neither_reads_nor_writes(cli, server, tmp_path: Path) -> None:
    assert cli("run", str(SEED), "--no-cache").exit_code == 0
    assert cache_files(tmp_path / "cache") == []
    assert cli("run", str(SEED)).exit_code == 0
    assert cli("run", str(SEED), "--no-cache").exit_code == 0
    assert len(server.requests) == 30


def test_a_different_sampling_setting_misses_the_cache(cli, server) -> None:
    assert cli("run", str(SEED)).exit_code == 0
    assert cli("run", str(SEED), "--temperature", "0.5").exit_code == 0
    assert len(server.requests) == 20
    assert all(r.body["temperature"] == 0.5 for r in server.requests[10:])
    assert cli("run", str(SEED), "--temperature", "0.5").exit_code == 0
    assert len(server.requests) == 20, "the same setting hits"


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff\xfe not json", b'{"key": "trunc', b"[]", b'{"key": "other"}'],
    ids=["binary", "truncated", "wrong-type", "wrong-key"],
)
def test_a_corrupt_cache_entry_is_ignored_and_overwritten(cli, server, tmp_path: Path, garbage: bytes) -> None:
    assert cli("run", str(SEED)).exit_code == 0
    entries = cache_files(tmp_path / "cache")
    for entry in entries:
        entry.write_bytes(garbage)
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr
    assert len(server.requests) == 20, "every corrupt entry was a miss"
    for entry in entries:
        assert json.loads(entry.read_text())["reply"]["content"], "the entry was rewritten"
    assert cli("run", str(SEED)).exit_code == 0
    assert len(server.requests) == 20, "the rewritten entries are hits"


def test_cache_dir_option_and_the_default_user_cache_dir(cli, server, tmp_path: Path, monkeypatch) -> None:
    chosen = tmp_path / "chosen"
    assert cli("run", str(SEED), "--cache-dir", str(chosen)).exit_code == 0
    assert len(cache_files(chosen)) == 10 and cache_files(tmp_path / "cache") == []
    monkeypatch.delenv("COUNTERPOINT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli("run", str(SEED)).exit_code == 0
    assert len(cache_files(tmp_path / "xdg" / "counterpoint")) == 10
    assert len(server.requests) == 20


# -- fast start ------------------------------------------------------------------------------

HEAVY = ("openai", "httpx", "httpx2", "jsonschema", "jinja2", "tenacity", "trafilatura", "llama_cpp", "pydantic")


def imported_after(code: str, tmp_path: Path) -> list[str]:
    """Run `code` in a fresh interpreter, then list which heavy packages it had imported."""
    probe = f"import sys\n{code}\nprint(sorted({{name.split('.')[0] for name in sys.modules}} & set({HEAVY!r})))"
    env = {**os.environ, "OPENAI_API_KEY": TEST_KEY, "COUNTERPOINT_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_the_import_probe_sees_heavy_imports(tmp_path: Path) -> None:
    assert {"openai", "pydantic"} <= set(imported_after("import openai", tmp_path))


@pytest.mark.parametrize(
    "args",
    [["--help"], ["runs", "--runs-dir", "RUNS"], ["runs", "--json", "--runs-dir", "RUNS"]],
    ids=["help", "runs", "runs-json"],
)
def test_help_and_runs_import_no_heavy_module(tmp_path: Path, args: list[str]) -> None:
    runs = tmp_path / "runs"
    (runs / "20260101T000000Z-an-article-abc123").mkdir(parents=True)
    (runs / "20260101T000000Z-an-article-abc123" / "manifest.json").write_text(
        json.dumps(
            {
                "status": "complete",
                "model": "gpt-4.1-mini",
                "article": {"title": "An article"},
                "summary": {"claims": 8, "tokens": 1000, "cost_usd": 0.001, "cost_status": "priced"},
            }
        )
    )
    argv = [arg.replace("RUNS", str(runs)) for arg in args]
    code = f"from pipeline.cli import main\nmain({argv!r}, standalone_mode=False)"
    assert imported_after(code, tmp_path) == []


def test_a_run_loads_no_checker_renderer_or_fetcher_before_its_first_request(tmp_path: Path) -> None:
    """What a run imports up to the first request: jsonschema, jinja2 and urllib3 come later or never."""
    code = (
        "import pipeline.cli, pipeline.api, pipeline.engine, pipeline.article, pipeline.sources, pipeline.web, "
        "pipeline.fetch, pipeline.stages"
    )
    loaded = set(imported_after(code, tmp_path))
    assert not loaded & {"jsonschema", "jinja2", "urllib3", "openai"}, loaded


def test_validators_and_the_page_template_are_built_during_the_first_round_trip(cli, seed_script) -> None:
    """They are built on a thread while the extraction request is out, not after the answers."""
    from pipeline import schemas
    from pipeline.brief import html as brief_html

    at_first_claim: dict[str, int] = {}
    answer = scripted_handler(seed_script)

    def handler(unit: str, body: dict[str, Any]) -> Any:
        if unit in CLAIMS and not at_first_claim:
            at_first_claim.update(
                validators=schemas.validator.cache_info().currsize, templates=brief_html.template.cache_info().currsize
            )
        return answer(unit, body)

    schemas.validator.cache_clear()
    brief_html.template.cache_clear()
    with FakeOpenAIServer(handler, latency=0.3) as fake:
        result = run_against(cli, fake)
    assert result.exit_code == 0, result.stderr
    assert at_first_claim == {"validators": len(SCHEMA_NAMES), "templates": 1}


def test_a_rerun_answered_from_the_cache_never_loads_the_sdk(cli, server, tmp_path: Path) -> None:
    assert cli("run", str(SEED)).exit_code == 0
    runs = tmp_path / "rerun"
    code = (
        f"from pipeline.cli import main\n"
        f"try:\n    main(['run', {str(SEED)!r}, '--base-url', {server.base_url!r}, '--runs-dir', {str(runs)!r}, "
        f"'--quiet'], standalone_mode=False)\nexcept SystemExit as done:\n    assert done.code == 0, done.code"
    )
    assert "openai" not in imported_after(code, tmp_path)
    assert len(server.requests) == 10
    assert len(list(runs.iterdir())) == 1


def test_the_program_keeps_its_output_and_exit_codes_when_it_skips_teardown(server, runs_dir: Path) -> None:
    from .conftest import run_subprocess

    env = {"OPENAI_API_KEY": TEST_KEY}
    complete = run_subprocess(["run", str(SEED), "--base-url", server.base_url, "--runs-dir", str(runs_dir)], env=env)
    assert complete.returncode == 0, complete.stderr
    assert (Path(complete.stdout.strip().splitlines()[-1]) / "brief.json").is_file()
    assert "complete" in complete.stderr
    server.script("C3", FakeResponse(status=400, error_message="no"))
    partial = run_subprocess(
        ["run", str(SEED), "--base-url", server.base_url, "--runs-dir", str(runs_dir), "--no-cache", "--json"], env=env
    )
    assert partial.returncode == 3
    assert json.loads(partial.stdout)["status"] == "partial", "all of the JSON reached the pipe"
    usage = run_subprocess(["run", "--bogus"], env=env)
    assert usage.returncode == 2 and "No such option '--bogus'" in usage.stderr


def test_schemas_from_an_experiment_folder_are_checked_at_load(cli, server, tmp_path: Path, monkeypatch) -> None:
    """The bundled schemas are checked by test_contracts, not at every start; a user's folder is checked."""
    from pipeline import schemas

    folder = tmp_path / "schemas"
    folder.mkdir()
    for path in (ROOT / "schemas").glob("*.schema.json"):
        (folder / path.name).write_text(path.read_text())
    broken = json.loads((folder / "rebuttal.schema.json").read_text())
    broken["properties"]["steelman"]["type"] = "strng"
    (folder / "rebuttal.schema.json").write_text(json.dumps(broken))
    monkeypatch.setenv("COUNTERPOINT_SCHEMAS_DIR", str(folder))
    schemas._load.cache_clear()
    schemas.validator.cache_clear()
    try:
        result = cli("run", str(SEED))
    finally:
        schemas._load.cache_clear()
        schemas.validator.cache_clear()
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "rebuttal.schema.json is not a valid JSON Schema" in last
    assert "COUNTERPOINT_SCHEMAS_DIR" in last and len(server.requests) == 0
