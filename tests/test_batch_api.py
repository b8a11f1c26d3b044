"""--batch-api: every model call of a corpus goes through Batch API jobs (the real openai SDK against
the fake server's /v1/files and /v1/batches), stage by stage, recorded so a restart pays nothing twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from pipeline.article import with_metadata
from pipeline.batch_api import BatchJobs, Polling, batch_api_client, parse_output
from pipeline.brief import check_brief
from pipeline.engine import Settings
from pipeline.errors import AuthError, ModelError
from pipeline.pricing import estimate, tier_note
from pipeline.runs import RunDir
from pipeline.testing import FakeOpenAIServer, FakeResponse
from pipeline.usage import Usage

from .conftest import ROOT, SEED_ARTICLE, TEST_KEY, read_brief, read_manifest, run_cli

FAST = Polling(settle=0.3, first=0.02, factor=1.5, longest=0.1)
CLAIMS = [f"C{n}" for n in range(1, 9)]
SETTINGS = Settings()


async def _corpus(
    server: FakeOpenAIServer,
    runs_dir: Path,
    state_dir: Path,
    count: int = 3,
    events: list[dict[str, Any]] | None = None,
    max_requests: int = 50_000,
    then: Exception | None = None,
    models: list[str] | None = None,
) -> list[Path]:
    """`count` articles run at once through one BatchJobs; their run directories. `then` is raised
    before the queue closes."""

    def on_event(kind: str, **fields: Any) -> None:
        if events is not None and kind == "batch_job":
            events.append(fields)

    async with BatchJobs(
        base_url=server.base_url,
        api_key=TEST_KEY,
        state_dir=state_dir,
        polling=FAST,
        on_event=on_event,
        max_requests=max_requests,
    ) as jobs:
        run_dirs, runs = [], []
        for index in range(count):
            article = with_metadata(SEED_ARTICLE, title=f"Op-ed {index + 1}")
            run_dir = api.new_run_dir(article, runs_dir)
            settings = Settings(model=models[index]) if models else SETTINGS
            client = batch_api_client(jobs, settings=settings, run_id=run_dir.id)
            run_dirs.append(run_dir.path)
            runs.append(
                asyncio.create_task(api.run_brief(article, settings, client, runs_dir=runs_dir, run_dir=run_dir))
            )
        await asyncio.sleep(0.05)  # every article is waiting on the first job by now
        assert jobs.in_flight == count
        await asyncio.gather(*runs)
        assert jobs.in_flight == 0
        if then is not None:
            raise then
    return run_dirs


async def _resume(server: FakeOpenAIServer, runs_dir: Path, state_dir: Path, run_dirs: list[Path]) -> None:
    async with BatchJobs(base_url=server.base_url, api_key=TEST_KEY, state_dir=state_dir, polling=FAST) as jobs:
        runs = []
        for path in run_dirs:
            run_dir = RunDir(path)
            client = batch_api_client(jobs, settings=SETTINGS, run_id=run_dir.id)
            runs.append(api.resume_brief(runs_dir, run_dir, SETTINGS, client))
        await asyncio.gather(*runs)


def _job_units(server: FakeOpenAIServer) -> list[list[str]]:
    """The units each job asked, in the order the jobs were created."""
    return [sorted(job.units) for job in server.batch_api.jobs.values()]


def _chat_completions(server: FakeOpenAIServer) -> int:
    return sum(1 for request in server.requests if request.path.rstrip("/").endswith("/chat/completions"))


def _calls(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_corpus_goes_through_one_job_per_stage(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    state_dir = tmp_path / "batch"
    run_dirs = asyncio.run(_corpus(server, runs_dir, state_dir, count=3, events=events))

    assert _chat_completions(server) == 0  # every model call went through a batch job
    assert _job_units(server) == [["extract"] * 3, sorted(CLAIMS * 3), ["synthesize"] * 3]
    assert server.batch_api.count("POST", "/files") == 3 and server.batch_api.count("POST", "/batches") == 3
    for run_dir in run_dirs:
        brief = read_brief(run_dir)
        assert check_brief(brief, (run_dir / "article.txt").read_text(encoding="utf-8")) == []
        assert brief["status"] == "complete" and len(brief["claims"]) == 8
        # Batch prices: half the standard estimate for the same tokens, and the brief says so.
        usage = brief["run"]["usage"]
        standard, _ = estimate(SETTINGS.model, Usage(usage["prompt_tokens"], usage["completion_tokens"]))
        assert standard and brief["run"]["cost_usd"] == pytest.approx(standard / 2, abs=2e-6)
        assert any("Batch API" in note and "50% of the standard price" in note for note in brief["notes"])
        assert read_manifest(run_dir)["price_tier"] == "batch"
        assert [call["outcome"] for call in _calls(run_dir)] == ["ok"] * 10
        validated = run_cli("validate", str(run_dir))
        assert validated.exit_code == 0, validated.stdout + validated.stderr
    # Progress: each job reported as it advanced, to completion with its counts.
    jobs = list(server.batch_api.jobs)
    assert [(e["job"], e["total"], e["completed"], e["failed"]) for e in events if e["status"] == "completed"] == [
        (jobs[0], 3, 3, 0),
        (jobs[1], 24, 24, 0),
        (jobs[2], 3, 3, 0),
    ]
    assert [e["status"] for e in events if e["job"] == jobs[0]] == [
        "validating",
        "in_progress",
        "finalizing",
        "completed",
    ]
    # The record lists every job and its requests; no key anywhere.
    record = json.loads((state_dir / "jobs.json").read_text(encoding="utf-8"))
    assert list(record["jobs"]) == jobs and {entry["status"] for entry in record["jobs"].values()} == {"completed"}
    assert all(entry["requests"] == [] for entry in record["jobs"].values())  # all handed out: released at the end
    assert len((state_dir / "answers" / f"{jobs[1]}.jsonl").read_text(encoding="utf-8").splitlines()) == 24
    for path in [*state_dir.rglob("*"), *runs_dir.rglob("*")]:
        if path.is_file():
            assert TEST_KEY not in path.read_text(encoding="utf-8", errors="replace")


def test_an_invalid_answer_is_asked_again_in_a_follow_up_job(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    server.script("C2", {"steelman": "missing everything else"})
    run_dirs = asyncio.run(_corpus(server, runs_dir, tmp_path / "batch", count=3))

    units = _job_units(server)
    # The bad C2 is re-asked in the job that carries the other articles' syntheses; its own
    # article's synthesis follows in a fourth.
    assert units == [["extract"] * 3, sorted(CLAIMS * 3), ["C2", "synthesize", "synthesize"], ["synthesize"]]
    reask = next(line for line in list(server.batch_api.jobs.values())[2].lines if ":C2:" in line["custom_id"])
    assert ":C2:2:" in reask["custom_id"]  # the unit's second request
    assert (
        reask["body"]["messages"][-2]["role"] == "assistant"
        and "missing everything" in reask["body"]["messages"][-2]["content"]
    )
    outcomes = sorted(tuple(call["outcome"] for call in _calls(d) if call["unit"] == "C2") for d in run_dirs)
    assert outcomes == [("invalid", "ok"), ("ok",), ("ok",)]
    assert all(read_brief(d)["status"] == "complete" for d in run_dirs)
    assert _chat_completions(server) == 0


def test_error_lines_fail_units_as_the_normal_path_does(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    """A 500 line is retried in a follow-up job; a 400 line fails its claim as a bad request."""
    server.script("synthesize", FakeResponse(status=500))
    server.script("C3", FakeResponse(status=400, error_message=f"unsupported parameter (key {TEST_KEY})"))
    (run_dir,) = asyncio.run(_corpus(server, runs_dir, tmp_path / "batch", count=1))

    assert _job_units(server) == [["extract"], sorted(CLAIMS), ["synthesize"], ["synthesize"]]
    brief = read_brief(run_dir)
    c3 = next(claim for claim in brief["claims"] if claim["id"] == "C3")
    assert c3["status"] == "failed" and c3["error"]["kind"] == "bad_request"
    assert "HTTP 400" in c3["error"]["message"] and TEST_KEY not in json.dumps(brief)
    assert brief["synthesis"]["status"] == "ok" and brief["status"] == "partial"
    failed = [call for call in _calls(run_dir) if call["outcome"] == "http_500"]
    assert len(failed) == 1 and failed[0]["batch_job"] == list(server.batch_api.jobs)[2]


def test_a_failed_job_fails_its_units_with_a_reason(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    server.batch_api.fail_next_job("the input file was refused")
    state_dir = tmp_path / "batch"
    run_dirs = asyncio.run(_corpus(server, runs_dir, state_dir, count=2))

    (job,) = server.batch_api.jobs
    for run_dir in run_dirs:
        brief = read_brief(run_dir)
        assert brief["status"] == "failed" and brief["thesis"] is None
        note = next(note for note in brief["notes"] if note.startswith("Claim extraction failed"))
        assert note == f"Claim extraction failed (transport): batch job {job} failed: the input file was refused"
        assert [call["outcome"] for call in _calls(run_dir)] == ["batch_error"]
    # The job's requests are released: a resume asks them again, in a new job.
    record = json.loads((state_dir / "jobs.json").read_text(encoding="utf-8"))
    assert record["jobs"][job]["status"] == "failed" and record["jobs"][job]["requests"] == []
    asyncio.run(_resume(server, runs_dir, state_dir, run_dirs))
    assert all(read_brief(d)["status"] == "complete" for d in run_dirs)
    assert server.batch_api.count("POST", "/batches") == 4


def test_an_expired_job_fails_what_it_did_not_answer(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    server.batch_api.expire_next_job(answered=1)
    run_dirs = asyncio.run(_corpus(server, runs_dir, tmp_path / "batch", count=2))

    statuses = sorted(read_brief(d)["status"] for d in run_dirs)
    assert statuses == ["complete", "failed"]  # one extraction was answered before the job expired
    failed = next(d for d in run_dirs if read_brief(d)["status"] == "failed")
    assert "expired" in " ".join(read_brief(failed)["notes"])


class Died(Exception):
    """Stands for a process dying: the queue is left without a clean finish."""


def test_answers_already_downloaded_are_not_asked_or_downloaded_again(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "batch"
    with pytest.raises(Died):
        asyncio.run(_corpus(server, runs_dir, state_dir, count=1, then=Died()))
    (run_dir,) = runs_dir.iterdir()
    calls_before = list(server.batch_api.calls)
    (run_dir / "units" / "synthesize.json").unlink()  # as if it died after the download, before saving

    asyncio.run(_resume(server, runs_dir, state_dir, [run_dir]))
    assert server.batch_api.calls == calls_before  # no upload, no job, no poll, no download
    assert read_brief(run_dir)["status"] == "complete"
    assert _calls(run_dir)[-1]["unit"] == "synthesize" and _calls(run_dir)[-1]["outcome"] == "ok"


def test_a_restarted_process_answers_from_the_job_it_submitted(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "batch"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.batch_api_child", server.base_url, str(runs_dir), str(state_dir), "3"],
        cwd=ROOT,
        env={"OPENAI_API_KEY": TEST_KEY, "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 60
        while not (state_dir / "jobs.json").exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert (state_dir / "jobs.json").exists(), "the child never recorded its job"
    assert server.batch_api.count("POST", "/batches") == 1

    run_dirs = sorted(path for path in runs_dir.iterdir() if path.is_dir())
    ((job, entry),) = json.loads((state_dir / "jobs.json").read_text(encoding="utf-8"))["jobs"].items()
    assert entry["status"] == "submitted" and entry["input_file_id"] == server.batch_api.jobs[job].input_file_id
    assert sorted(custom_id.split(":")[:3] for custom_id in entry["requests"]) == [
        [d.name, "extract", "1"] for d in run_dirs
    ]
    asyncio.run(_resume(server, runs_dir, state_dir, run_dirs))

    # The extraction job the dead process submitted answered the restarted one: created once.
    assert server.batch_api.count("POST", "/files") == 3 and server.batch_api.count("POST", "/batches") == 3
    assert _job_units(server) == [["extract"] * 3, sorted(CLAIMS * 3), ["synthesize"] * 3]
    assert all(read_brief(d)["status"] == "complete" for d in run_dirs) and len(run_dirs) == 3
    assert _chat_completions(server) == 0


def test_output_lines_map_back_by_custom_id() -> None:
    text = "\n".join(
        [
            json.dumps(
                {"custom_id": "r:C1:1:a", "response": {"status_code": 200, "body": {"choices": []}}, "error": None}
            ),
            json.dumps(
                {"custom_id": "r:C2:1:b", "response": None, "error": {"code": "batch_expired", "message": "late"}}
            ),
            json.dumps(
                {"custom_id": "r:C3:1:c", "response": {"status_code": 429, "body": {"error": {"message": "slow"}}}}
            ),
            "not json",
            json.dumps(["no custom id"]),
        ]
    )
    answers = parse_output("batch_1", text)
    assert set(answers) == {"r:C1:1:a", "r:C2:1:b", "r:C3:1:c"}
    assert answers["r:C1:1:a"].usable and answers["r:C1:1:a"].body == {"choices": []}
    assert answers["r:C2:1:b"].error == "batch job batch_1 did not run this request: batch_expired: late"
    assert answers["r:C3:1:c"].status == 429 and not answers["r:C3:1:c"].usable


def test_a_full_job_goes_without_waiting_to_settle(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    asyncio.run(_corpus(server, runs_dir, tmp_path / "batch", count=3, max_requests=2))
    sizes = [len(job.lines) for job in server.batch_api.jobs.values()]
    assert max(sizes) == 2 and sum(sizes) == 30  # 3 articles × (extraction, 8 claims, synthesis)
    assert _job_units(server)[0] == ["extract", "extract"]


def test_a_rejected_response_format_steps_down_in_a_follow_up_job(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    server.script("extract", FakeResponse(status=400, error_message="response_format json_schema is not supported"))
    (run_dir,) = asyncio.run(_corpus(server, runs_dir, tmp_path / "batch", count=1))

    first, second = [job.lines[0]["body"] for job in list(server.batch_api.jobs.values())[:2]]
    assert first["response_format"]["type"] == "json_schema" and second["response_format"]["type"] == "json_object"
    assert (
        read_brief(run_dir)["status"] == "complete" and read_brief(run_dir)["run"]["response_format"] == "json_object"
    )


def test_batch_prices_are_half_the_standard_ones() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=200_000)
    standard, status = estimate("gpt-4.1-mini", usage)
    batch, batch_status = estimate("gpt-4.1-mini", usage, "batch")
    assert (status, batch_status) == ("priced", "priced") and standard == pytest.approx(0.32 + 0.02 + 1.60)
    assert batch == pytest.approx(standard / 2)
    assert estimate("some-local-model", usage, "batch") == (None, "unpriced")
    assert tier_note("standard") is None and "50%" in (tier_note("batch") or "")


def test_the_fake_batch_api_speaks_the_sdk(server: FakeOpenAIServer) -> None:
    """Through the SDK alone: a refused input file fails its job as it validates; a cancelled job
    ends cancelled with its requests in the error file."""
    from openai import OpenAI

    sdk = OpenAI(base_url=server.base_url, api_key=TEST_KEY, max_retries=0)
    try:
        bad = sdk.files.create(file=("in.jsonl", b'{"custom_id": "a", "method": "GET"}\n'), purpose="batch")
        job = sdk.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert job.status == "validating"
        failed = sdk.batches.retrieve(job.id)
        assert failed.status == "failed" and failed.errors and failed.errors.data
        assert failed.errors.data[0].message == "line 1 is not a POST to /v1/chat/completions"

        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}}
        good = sdk.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
        job = sdk.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert sdk.batches.cancel(job.id).status == "cancelling"
        cancelled = sdk.batches.retrieve(job.id)
        assert cancelled.status == "cancelled" and cancelled.output_file_id is None and cancelled.error_file_id
        (error,) = [json.loads(text) for text in sdk.files.content(cancelled.error_file_id).text.splitlines()]
        assert error["custom_id"] == "a" and error["error"]["code"] == "batch_cancelled"
    finally:
        sdk.close()
    assert _chat_completions(server) == 0


def test_a_resume_after_a_finished_batch_asks_failed_units_afresh(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    """Answers handed to units that concluded are released when the queue closes cleanly: a unit
    that failed for good is asked again on resume, not replayed the same bad answers."""
    server.script("C2", *[{"steelman": "missing everything else"}] * 3)  # the first try and both re-asks
    state_dir = tmp_path / "batch"
    (run_dir,) = asyncio.run(_corpus(server, runs_dir, state_dir, count=1))
    c2 = next(claim for claim in read_brief(run_dir)["claims"] if claim["id"] == "C2")
    assert c2["status"] == "failed" and c2["error"]["kind"] == "invalid"
    jobs_before = len(server.batch_api.jobs)

    asyncio.run(_resume(server, runs_dir, state_dir, [run_dir]))
    assert read_brief(run_dir)["status"] == "complete"
    assert _job_units(server)[jobs_before:] == [["C2"], ["synthesize"]]


def test_each_job_holds_one_model(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    """The Batch API takes one model per input file: articles on two models make two jobs a stage."""
    run_dirs = asyncio.run(
        _corpus(server, runs_dir, tmp_path / "batch", count=3, models=["gpt-4.1-mini", "gpt-4o", "gpt-4o"])
    )

    models = [{line["body"]["model"] for line in job.lines} for job in server.batch_api.jobs.values()]
    assert sorted(map(sorted, models)) == [["gpt-4.1-mini"]] * 3 + [["gpt-4o"]] * 3
    assert sorted(len(job.lines) for job in server.batch_api.jobs.values()) == [1, 1, 2, 2, 8, 16]
    assert all(read_brief(d)["status"] == "complete" for d in run_dirs)


def test_the_batch_api_calls_are_retried_and_refusals_stop_the_run(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    server.batch_api.fail_calls(503, times=2)  # the upload twice, then it goes through
    (run_dir,) = asyncio.run(_corpus(server, runs_dir, tmp_path / "batch", count=1))
    assert read_brief(run_dir)["status"] == "complete" and server.batch_api.count("POST", "/files") == 5

    server.batch_api.fail_calls(401)
    with pytest.raises(AuthError, match=r"refused the credentials \(HTTP 401\); check OPENAI_API_KEY"):
        asyncio.run(_corpus(server, runs_dir, tmp_path / "batch2", count=1))
    server.batch_api.fail_calls(404)
    with pytest.raises(ModelError, match=r"HTTP 404\): the endpoint has no Batch API .*; run without --batch-api"):
        asyncio.run(_corpus(server, runs_dir, tmp_path / "batch3", count=1))
    stopped = [read_brief(d) for d in runs_dir.iterdir() if read_brief(d)["status"] == "failed"]
    assert len(stopped) == 2 and all(any("The run stopped early" in n for n in b["notes"]) for b in stopped)
    assert _chat_completions(server) == 0


@pytest.mark.parametrize("content", ["{not json", "[" * 100_000 + "]" * 100_000, '{"jobs": []}'])
def test_a_damaged_job_record_is_one_line_naming_it(tmp_path: Path, content: str) -> None:
    from pipeline.batch_state import STATE_NAME, JobRecord
    from pipeline.errors import RunDirError

    (tmp_path / STATE_NAME).write_text(content, encoding="utf-8")
    with pytest.raises(RunDirError, match=r"Batch API record .* is damaged .*; it lists jobs already paid for"):
        JobRecord(tmp_path)
