"""What `run` says while it works and when it ends: progress on a terminal only, the summary, --quiet
and --json."""

from __future__ import annotations

import io
import json
import os
import pty
import re
from pathlib import Path

from pipeline.progress import Progress
from pipeline.testing import FakeResponse

from .conftest import SEED, TEST_KEY, read_brief, start_counterpoint

PROGRESS_PREFIXES = ("run: ", "stage: ", "claims: ", "retry: ", "resume: ")


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(PROGRESS_PREFIXES)]


def test_piped_stderr_gets_the_summary_but_no_progress(cli, server) -> None:
    server.script("C2", "not json")  # one re-ask, so there is a retry to (not) report
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    usage = brief["run"]["usage"]
    assert progress_lines(result.stderr) == []
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert lines[0] == "complete: 8 claims (8 ok), synthesis ok, 27 to verify (17 dates, 10 names) before use"
    assert re.fullmatch(
        rf"11 calls \(0 cached, 1 retry\), {usage['prompt_tokens']:,} prompt \+ {usage['completion_tokens']:,} "
        rf"completion tokens \(0 cached\), cost \${brief['run']['cost_usd']:.4f}, \d+\.\ds",
        lines[1],
    ), lines[1]
    assert usage["calls"] == 11
    assert lines[2] == f"brief: {result.run_dir} (brief.html, brief.md, brief.json)"


def test_the_summary_counts_each_kind_of_outcome(cli, server) -> None:
    server.script("C3", FakeResponse(content=None, refusal="no"))
    server.script("C5", *["not json"] * 3)
    result = cli("run", str(SEED), "--model", "some-local-model")
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == "partial: 8 claims (6 ok, 1 failed, 1 refused), synthesis ok, 18 to verify (12 dates, 6 names) before use"
    )
    assert "2 retries" in lines[1] and "cost unpriced (some-local-model is not in the price table)" in lines[1]


def test_quiet_prints_nothing_on_stderr_for_a_clean_run(cli) -> None:
    result = cli("run", str(SEED), "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.strip() == str(result.run_dir)


def test_json_prints_the_brief_on_stdout(cli, runs_dir: Path) -> None:
    result = cli("run", str(SEED), "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)  # the whole of stdout is the brief: no path line after it
    assert printed == read_brief(runs_dir / printed["run"]["id"])
    assert printed["status"] == "complete" and len(printed["claims"]) == 8
    assert result.stderr.startswith("complete: "), "the summary still goes to stderr"


def test_a_terminal_sees_stage_claims_and_retries(server, runs_dir: Path, tmp_path: Path) -> None:
    server.script("C2", "not json")
    server.script("C4", FakeResponse(status=503))
    leader, follower = pty.openpty()
    process = start_counterpoint(
        ["run", str(SEED), "--base-url", server.base_url, "--runs-dir", str(runs_dir), "--concurrency", "1"],
        env={"OPENAI_API_KEY": TEST_KEY},
        stderr=follower,
        text=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = process.stdout.read().decode()
    assert process.wait(timeout=60) == 0
    os.close(leader)
    stderr = b"".join(chunks).decode().replace("\r\n", "\n")
    lines = progress_lines(stderr)
    run_dir = stdout.strip().splitlines()[-1]
    assert lines[0] == f"run: {run_dir}"
    assert lines[1:3] == ["stage: extract", "stage: rebut (8 claims)"]
    done = [line for line in lines if line.startswith("claims: ")]
    assert [line.split()[1] for line in done] == [f"{n}/8" for n in range(1, 9)]
    assert done[0] == "claims: 1/8 done (C1 ok)"
    assert "retry: rebut C2 attempt 1: output failed validation" in lines
    assert "retry: rebut C4 attempt 1: HTTP 503" in lines
    assert lines[-1] == "stage: synthesize"
    assert stderr.splitlines()[-3].startswith("complete: 8 claims (8 ok)")
    assert "(0 cached, 2 retries)" in stderr


def test_progress_lines_follow_the_events() -> None:
    stream = io.StringIO()
    progress = Progress(stream, live=True)
    progress("stage", stage="rebut", total=3)
    progress("attempt", stage="rebut", unit="C1", attempt=1, outcome="http_429")
    progress("attempt", stage="rebut", unit="C1", attempt=2, outcome="ok")
    progress("claim", claim="C1", status="ok", done=1, total=3)
    progress("reused", unit="rebut-C2")
    progress("warning", message="resuming anyway")
    assert stream.getvalue().splitlines() == [
        "stage: rebut (3 claims)",
        "retry: rebut C1 attempt 1: HTTP 429",
        "claims: 1/3 done (C1 ok)",
        "resume: reusing rebut-C2",
        "warning: resuming anyway",
    ]
    assert progress.retries == 1
    quiet = io.StringIO()
    silent = Progress(quiet, live=True, quiet=True)
    silent("stage", stage="extract")
    silent("warning", message="x")
    assert quiet.getvalue() == "" and not silent.live
