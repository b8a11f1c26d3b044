"""Resume: a killed or partial run is finished without repeating any finished unit."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import schemas
from pipeline.testing import FakeOpenAIServer, FakeResponse, scripted_handler

from .conftest import ROOT, SEED, TEST_KEY, read_brief, read_manifest, run_partially, run_subprocess, start_counterpoint

SLOW_CLAIMS = {"C5", "C6", "C7", "C8"}


def slow_handler(seed_script: dict[str, Any], fast: threading.Event | None = None):
    """Extraction and C1–C4 answer at once; C5–C8 take far longer than the test waits, until `fast` is set
    (so that a resume, which goes to the same server, is answered at once)."""
    answer = scripted_handler(seed_script)

    def handler(unit: str, body: dict[str, Any]) -> Any:
        slow = unit in SLOW_CLAIMS and not (fast and fast.is_set())
        return FakeResponse(content=answer(unit, body), delay=30 if slow else 0.05)

    return handler


def test_sigkill_mid_run_then_resume_repeats_no_finished_unit(seed_script, runs_dir: Path, cli) -> None:
    fast = threading.Event()
    with FakeOpenAIServer(slow_handler(seed_script, fast)) as slow:
        process = start_counterpoint(
            ["run", str(SEED), "--base-url", slow.base_url, "--runs-dir", str(runs_dir), "--no-cache"],
            env={"OPENAI_API_KEY": TEST_KEY},
            text=False,
        )
        try:
            deadline = time.monotonic() + 30
            finished: list[Path] = []
            while time.monotonic() < deadline:
                finished = list(runs_dir.glob("*/units/C*.json"))
                if len(finished) >= 4:
                    break
                time.sleep(0.05)
            assert len(finished) == 4, "the fast claims should have finished"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            process.kill()
        killed_units = {r.unit for r in slow.requests}
        assert killed_units == {"extract", "C1", "C2", "C3", "C4"} | SLOW_CLAIMS
        (run_dir,) = runs_dir.iterdir()
        assert not (run_dir / "brief.json").exists()
        assert read_manifest(run_dir)["status"] == "running"

        seen = len(slow.requests)
        fast.set()
        result = cli("run", "--resume", run_dir.name, "--no-cache", endpoint=False)  # the recorded endpoint
        assert result.exit_code == 0, result.stderr
        assert result.run_dir == run_dir
        assert sorted(r.unit for r in slow.requests[seen:]) == sorted([*SLOW_CLAIMS, "synthesize"])
    brief = read_brief(run_dir)
    assert brief["status"] == "complete" and schemas.validate("brief", brief) == []
    assert [c["id"] for c in brief["claims"]] == [f"C{n}" for n in range(1, 9)]
    manifest = read_manifest(run_dir)
    assert manifest["reused_units"] == ["extract", "C1", "C2", "C3", "C4"]
    assert manifest["resumed"]["status"] == "running"


def test_partial_run_resumed_after_the_server_recovers(cli, server, runs_dir: Path) -> None:
    first = run_partially(cli, server, "--no-cache")
    seen = len(server.requests)

    second = cli("run", "--resume", "latest", "--no-cache")
    assert second.exit_code == 0, second.stderr
    assert second.run_dir == first.run_dir
    assert [r.unit for r in server.requests[seen:]] == ["C3", "synthesize"]
    brief = read_brief(second.run_dir)
    assert brief["status"] == "complete"
    assert read_manifest(second.run_dir)["status"] == "complete"


def test_a_run_recorded_with_the_former_unit_names_resumes(cli, server, runs_dir: Path) -> None:
    """Runs recorded before a claim's unit took its calls-log name (C3) saved it as units/rebut-C3.json."""
    server.script("C3", *[FakeResponse(status=503)] * 2)
    first = cli("run", str(SEED), "--max-retries", "1", "--no-cache")
    assert first.exit_code == 3
    units = first.run_dir / "units"
    for unit in units.glob("C*.json"):
        old = json.loads(unit.read_text())
        (units / f"rebut-{unit.name}").write_text(json.dumps({**old, "unit": f"rebut-{unit.stem}"}))
        unit.unlink()
    assert sorted(path.name for path in units.glob("*.json")) == [
        "extract.json",
        *(f"rebut-C{n}.json" for n in (1, 2, 4, 5, 6, 7, 8)),
        "synthesize.json",
    ]
    seen = len(server.requests)

    second = cli("run", "--resume", "latest", "--no-cache")
    assert second.exit_code == 0, second.stderr
    assert [r.unit for r in server.requests[seen:]] == ["C3", "synthesize"]
    manifest = json.loads((second.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["reused_units"] == ["extract", "C1", "C2", "C4", "C5", "C6", "C7", "C8"]
    assert json.loads((units / "C3.json").read_text())["unit"] == "C3"


def test_resume_takes_recorded_settings_unless_overridden(cli, server) -> None:
    server.script("C1", FakeResponse(status=400, error_message="bad"))
    first = cli("run", str(SEED), "--max-claims", "8", "--reasks", "1", "--no-cache")
    assert first.exit_code == 3
    again = cli("run", "--resume", "latest", "--no-cache")
    assert again.exit_code == 0, again.stderr
    changed = cli("run", "--resume", "latest", "--reasks", "0", "--no-cache")
    assert changed.exit_code == 1
    assert "settings.reasks" in changed.stderr and "--force" in changed.stderr


def test_resume_refuses_a_different_article(cli, server, tmp_path: Path) -> None:
    cli("run", str(SEED), "--no-cache")
    other = tmp_path / "other.txt"
    other.write_text(SEED.read_text().replace("Putin", "Medvedev"))
    requests = len(server.requests)
    result = cli("run", str(other), "--resume", "latest")
    assert result.exit_code == 1
    assert "the article differs" in result.stderr and "--force" in result.stderr
    assert len(server.requests) == requests


def test_resume_refuses_changed_prompts_and_force_overrides(cli, server, tmp_path: Path, monkeypatch) -> None:
    server.script("C2", FakeResponse(status=400, error_message="bad"))
    assert cli("run", str(SEED), "--no-cache").exit_code == 3
    prompts_copy = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts_copy)
    with open(prompts_copy / "rebut_claim.md", "a", encoding="utf-8") as handle:
        handle.write("\nBe brief.\n")
    monkeypatch.setenv("COUNTERPOINT_PROMPTS_DIR", str(prompts_copy))
    from pipeline import prompts

    prompts._template.cache_clear()
    try:
        refused = cli("run", "--resume", "latest", "--no-cache")
        assert refused.exit_code == 1
        assert "prompts.rebut_claim" in refused.stderr
        forced = cli("run", "--resume", "latest", "--force", "--no-cache")
        assert forced.exit_code == 0, forced.stderr
        assert "warning: resuming anyway (--force)" in forced.stderr
    finally:
        prompts._template.cache_clear()


@pytest.mark.parametrize("ref", ["../etc", "a/../../b", "..", "/etc/passwd", "runs/../../x"])
def test_run_ids_with_path_traversal_are_refused(cli, server, ref: str) -> None:
    for command in (["run", "--resume", ref], ["show", ref]):
        result = cli(*command)
        assert result.exit_code == 1
        # A reference that happens to name an existing folder outside the runs dir (/etc) is
        # refused as not a run directory; the others as not a run id.
        refusals = ("not a run id", "no run", "is not a run directory (no manifest.json)")
        assert any(refusal in result.stderr for refusal in refusals), result.stderr
        assert len(server.requests) == 0


def test_resume_of_an_unknown_run_is_a_clear_error(cli, server) -> None:
    result = cli("run", "--resume", "20990101T000000Z-nothing")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: no run")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_writes_a_partial_brief_then_resume_finishes(
    seed_script, runs_dir: Path, cli, server, sig: signal.Signals
) -> None:
    fast = threading.Event()
    with FakeOpenAIServer(slow_handler(seed_script, fast)) as slow:
        slow_url = slow.base_url
        process = start_counterpoint(
            ["run", str(SEED), "--base-url", slow_url, "--runs-dir", str(runs_dir), "--no-cache"],
            env={"OPENAI_API_KEY": TEST_KEY},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(runs_dir.glob("*/units/C*.json"))) < 4:
            time.sleep(0.05)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=20)
        assert process.returncode == 130
        assert "Traceback" not in stderr
        (run_dir,) = runs_dir.iterdir()
        # It ends like a run: the summary, the run directory as stdout's last line, a runnable resume hint.
        assert stdout.strip().splitlines()[-1] == str(run_dir)
        assert "partial: 8 claims (4 ok, 4 interrupted)" in stderr
        assert stderr.strip().splitlines()[-1] == (
            f"error: interrupted; what finished is saved in {run_dir}; continue with "
            f"'counterpoint run --resume {run_dir.name} --runs-dir {runs_dir}'"
        )
        brief = read_brief(run_dir)
        assert schemas.validate("brief", brief) == [] and brief["status"] == "partial"
        assert [c["status"] for c in brief["claims"]] == ["ok"] * 4 + ["failed"] * 4
        assert {c["error"]["kind"] for c in brief["claims"][4:]} == {"interrupted"}

        # As the hint says, with a key in the environment and no --base-url: the rest goes to the
        # server the run was started on, never to OpenAI, and with the cache still off.
        seen = len(slow.requests)
        fast.set()
        result = cli("run", "--resume", run_dir.name, endpoint=False)
        assert result.exit_code == 0, result.stderr
        assert sorted(r.unit for r in slow.requests[seen:]) == sorted([*SLOW_CLAIMS, "synthesize"])
    assert server.requests == []
    manifest = read_manifest(run_dir)
    assert manifest["endpoint"] == slow_url and manifest["no_cache"] is True and manifest["local"] is None
    assert manifest["cache"]["hits"] == 0


@pytest.mark.parametrize("status", [401, 404])
def test_fatal_error_in_one_claim_keeps_the_claims_that_finished(cli, server, runs_dir: Path, status: int) -> None:
    server.script("C5", FakeResponse(status=status))
    result = cli("run", str(SEED), "--concurrency", "1")
    assert result.exit_code == 1
    (run_dir,) = runs_dir.iterdir()
    # The failed run's path, as stdout's last line and in the error, with a runnable resume command.
    assert result.stdout.splitlines()[-1] == str(run_dir)
    assert "partial: 8 claims (4 ok, 4 skipped)" in result.stderr
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: " + ("the endpoint at" if status == 401 else "model 'gpt-4.1-mini' was not"))
    assert "check OPENAI_API_KEY" in error if status == 401 else "check --model and --base-url" in error
    assert error.endswith(
        f". The record is in {run_dir}; once that is fixed, continue with "
        f"'counterpoint run --resume {run_dir.name} --runs-dir {runs_dir}" + ("'" if status == 401 else " --force'")
    )  # a corrected model differs from the record
    brief = read_brief(run_dir)
    assert [c["status"] for c in brief["claims"]] == ["ok"] * 4 + ["failed"] * 4
    assert all(c["error"]["kind"] == "skipped" for c in brief["claims"][4:])
    assert [r.unit for r in server.requests] == ["extract", "C1", "C2", "C3", "C4", "C5"]


def test_a_second_resume_of_a_running_run_is_refused(cli, server, runs_dir: Path) -> None:
    first = run_partially(cli, server)
    run_dir, seen = first.run_dir, len(server.requests)
    answer, c3_released = server.handler, threading.Event()

    def hold_c3(unit: str, body: dict[str, Any]) -> Any:  # the first resume waits for C3 until released
        if unit == "C3":
            c3_released.wait(60)
        return answer(unit, body)

    server.handler = hold_c3
    env = {"OPENAI_API_KEY": TEST_KEY}
    resuming = start_counterpoint(["run", "--resume", run_dir.name, "--runs-dir", str(runs_dir)], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(server.requests) == seen:
            time.sleep(0.02)
        assert len(server.requests) == seen + 1, "the first resume should have asked for C3"
        second = run_subprocess(["run", "--resume", run_dir.name, "--runs-dir", str(runs_dir)], env=env)
        assert resuming.poll() is None, "the first resume should still be running"
        c3_released.set()
        _, stderr = resuming.communicate(timeout=60)
    finally:
        c3_released.set()
        resuming.kill()
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr == (
        f"error: run {run_dir.name} is already running (pid {resuming.pid}); wait for it to "
        "finish, or stop it, before resuming it\n"
    )
    assert resuming.returncode == 0, stderr
    assert [r.unit for r in server.requests[seen:]] == ["C3", "synthesize"]  # nothing asked twice
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == len(server.requests) == seen + 2  # one line per request, none from the refused resume
    assert [c["outcome"] for c in calls if c["unit"] == "C3"] == ["http_503", "http_503", "ok"]
    assert [c["unit"] for c in calls[seen:]] == ["C3", "synthesize"]


def test_a_run_that_cannot_be_locked_is_a_one_line_error(cli, server, runs_dir: Path) -> None:
    run_dir = cli("run", str(SEED)).run_dir
    (run_dir / ".lock").unlink()
    (run_dir / ".lock").mkdir()  # cannot be opened as the lock file
    result = cli("run", "--resume", run_dir.name)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot write {run_dir / '.lock'} (Is a directory); what finished is saved in "
        f"{run_dir}: fix that, then continue with 'counterpoint run --resume {run_dir.name} "
        f"--runs-dir {runs_dir}'\n"
    )
