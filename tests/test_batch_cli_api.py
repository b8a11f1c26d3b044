"""`counterpoint batch --batch-api`: a folder through the provider's Batch API, end to end (the CLI,
the real openai SDK, the fake server's /v1/files and /v1/batches over real HTTP)."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.testing import FakeOpenAIServer

from .conftest import TEST_KEY, read_brief, read_manifest, run_cli, start_counterpoint
from .test_batch import make_folder, rows_of

# Checks at most this far apart (and the same pause to gather a stage's requests): fast tests, and
# still far longer than the gaps between the articles' requests, so each stage is one job.
POLL = "0.4"


def api_cli(server: FakeOpenAIServer, runs_dir: Path, *args: str) -> Any:
    return run_cli(
        "batch",
        *args,
        "--runs-dir",
        str(runs_dir),
        "--base-url",
        server.base_url,
        "--poll-interval",
        POLL,
        key=TEST_KEY,
    )


def chat_completions(server: FakeOpenAIServer) -> int:
    return sum(1 for request in server.requests if request.path.rstrip("/").endswith("/chat/completions"))


def job_units(server: FakeOpenAIServer) -> list[Counter[str]]:
    """The units each job holds (from the custom ids: run id, unit, request number, digest)."""
    return [Counter(line["custom_id"].split(":")[-3] for line in job.lines) for job in server.batch_api.jobs.values()]


def test_a_folder_through_the_batch_api(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 20)
    (folder / "broken.txt").write_bytes(b"\x00\x01\x02 not text \x00" * 20)
    result = api_cli(server, runs_dir, str(folder), "--batch-api", "--concurrency", "2")
    assert result.exit_code == 3, result.stderr
    batch_dir = Path(result.stdout.strip().splitlines()[-1])

    rows = rows_of(batch_dir)
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 1 and Path(failed[0]["source"]).name == "broken.txt" and failed[0]["run"] is None
    complete = [row for row in rows if row["status"] == "complete"]
    assert len(complete) == 20
    for row in complete:
        validated = run_cli("validate", row["run"])
        assert validated.exit_code == 0, validated.stdout + validated.stderr
        assert read_manifest(Path(row["run"]))["price_tier"] == "batch"
        assert read_brief(Path(row["run"]))["article"]["title"].startswith("Op-ed")

    # Every model call went through batch jobs, one per stage: --concurrency 2 held none of them back.
    assert chat_completions(server) == 0
    assert job_units(server) == [
        Counter({"extract": 20}),
        Counter({f"C{n}": 20 for n in range(1, 9)}),
        Counter({"synthesize": 20}),
    ]
    jobs = list(server.batch_api.jobs)
    state = json.loads((batch_dir / "batch_api" / "jobs.json").read_text(encoding="utf-8"))
    assert list(state["jobs"]) == jobs and {entry["status"] for entry in state["jobs"].values()} == {"completed"}

    # Costs at batch prices, and the record says so.
    manifest = json.loads((batch_dir / "manifest.json").read_text(encoding="utf-8"))
    totals = manifest["totals"]
    assert manifest["settings"]["batch_api"] is True and totals["price_tier"] == "batch"
    assert totals["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in complete), abs=1e-6)
    assert totals["cost_usd"] == pytest.approx(sum(read_brief(Path(r["run"]))["run"]["cost_usd"] for r in complete))
    index = (batch_dir / "index.html").read_text(encoding="utf-8")
    assert "Batch API" in index and "50% of the standard price" in index and index.count('brief.html"') == 20
    # Progress: each job when first seen and when it ended; the summary names the prices.
    for job, total in zip(jobs, (20, 160, 20), strict=True):
        assert f"batch job {job} validating: {total} requests" in result.stderr
        assert f"batch job {job} completed: {total} answered, 0 failed" in result.stderr
    assert "at batch prices" in result.stderr
    for path in batch_dir.rglob("*"):
        assert not path.is_file() or TEST_KEY not in path.read_text(encoding="utf-8", errors="replace")


def test_sigterm_after_the_first_job_then_resume_pays_nothing_twice(
    server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 4)
    server.batch_api.polls_to_finish = 50  # the first job is still running when the batch is stopped
    args = ["batch", str(folder), "--batch-api", "--runs-dir", str(runs_dir), "--base-url", server.base_url]
    process = start_counterpoint([*args, "--poll-interval", POLL], env={"OPENAI_API_KEY": TEST_KEY})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not server.batch_api.jobs and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # recorded and being polled
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr.splitlines()[-1] and "counterpoint batch --resume" in stderr
    (first,) = server.batch_api.jobs
    assert job_units(server) == [Counter({"extract": 4})]
    batch_dir = Path(stdout.strip().splitlines()[-1])
    assert list(json.loads((batch_dir / "batch_api" / "jobs.json").read_text(encoding="utf-8"))["jobs"]) == [first]

    server.batch_api.polls_to_finish = 3
    result = run_cli("batch", "--resume", "latest", "--runs-dir", str(runs_dir), key=TEST_KEY)  # settings recorded
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]) == batch_dir
    # The extraction job was followed, not submitted again: three jobs in all, no request in two.
    assert next(iter(server.batch_api.jobs)) == first and server.batch_api.count("POST", "/batches") == 3
    assert job_units(server) == [
        Counter({"extract": 4}),
        Counter({f"C{n}": 4 for n in range(1, 9)}),
        Counter({"synthesize": 4}),
    ]
    asked = [line["custom_id"] for job in server.batch_api.jobs.values() for line in job.lines]
    assert len(asked) == len(set(asked)) == 40
    assert chat_completions(server) == 0
    rows = rows_of(batch_dir)
    assert len(rows) == 4 and {row["status"] for row in rows} == {"complete"}
    assert len(list(runs_dir.glob("*/brief.json"))) == 4  # each resumed in its own run


def test_an_endpoint_without_a_batch_api(server: FakeOpenAIServer, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 3)
    server.batch_api.fail_calls(404)  # the upload: as an endpoint without /v1/files answers
    result = api_cli(server, runs_dir, str(folder), "--batch-api")
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "HTTP 404" in line and "has no Batch API" in line
    assert "run without --batch-api" in line and TEST_KEY not in result.stderr
    assert server.batch_api.count("POST", "/files") == 1 and chat_completions(server) == 0
    # The command the line gives turns the recorded --batch-api off: the batch completes over HTTP.
    command = line.rsplit("continue with '", 1)[1].rstrip("'").split()
    assert command[:3] == ["counterpoint", "batch", "--resume"] and command[-1] == "--no-batch-api"
    resumed = run_cli(*command[1:], key=TEST_KEY)
    assert resumed.exit_code == 0, resumed.stderr
    assert chat_completions(server) == 30 and server.batch_api.count("POST", "/files") == 1


def test_batch_api_usage_errors(runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 1)
    local = run_cli("batch", str(folder), "--batch-api", "--local", "--runs-dir", str(runs_dir))
    assert local.exit_code == 2 and "batch has no --local" in local.stderr and "--base-url" in local.stderr
    poll = run_cli("batch", str(folder), "--poll-interval", "1", "--runs-dir", str(runs_dir))
    assert poll.exit_code == 2 and "--poll-interval only goes with --batch-api" in poll.stderr


def test_progress_shows_the_jobs_not_yet_ended() -> None:
    import io

    from pipeline.batch_progress import BatchProgress

    stream = io.StringIO()
    progress = BatchProgress(20, stream=stream, live=False)
    progress.batch_job({"job": "batch_1", "status": "validating", "total": 20, "completed": 0, "failed": 0})
    progress.batch_job({"job": "batch_1", "status": "in_progress", "total": 20, "completed": 7, "failed": 1})
    assert progress.line(20).endswith("; batch jobs: batch_1 in_progress 7/20")
    progress.batch_job({"job": "batch_1", "status": "completed", "total": 20, "completed": 19, "failed": 1})
    assert "batch jobs" not in progress.line(0)
    assert stream.getvalue().splitlines() == [
        "batch job batch_1 validating: 20 requests",
        "batch job batch_1 completed: 19 answered, 1 failed",
    ]
