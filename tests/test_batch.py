"""`counterpoint batch`: a folder or feed of articles through the real SDK and the fake HTTP server."""

from __future__ import annotations

import csv
import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline import schemas
from pipeline.testing import FakeOpenAIServer, FakeResponse, ReceivedRequest, max_in_flight, scripted_handler

from .conftest import SEED, TEST_KEY, one_error_line, read_brief, run_cli, start_counterpoint

SEED_TEXT = SEED.read_text(encoding="utf-8")


def variant(n: int) -> str:
    """The seed article under its own title line: the seed script's quotes are still in it, and the
    title says which article a request is for."""
    return f"Op-ed {n:02d}: {SEED_TEXT}"


def article_of(request: ReceivedRequest) -> str | None:
    """Which variant a request asks about ('Op-ed 07'), from the article in its messages."""
    text = json.dumps(request.body.get("messages"))
    start = text.find("Op-ed ")
    return text[start : start + 8] if start >= 0 else None


def make_folder(root: Path, count: int) -> Path:
    folder = root / "articles"
    folder.mkdir()
    for n in range(1, count + 1):
        (folder / f"oped-{n:02d}.txt").write_text(variant(n), encoding="utf-8")
    return folder


def batch_cli(server: FakeOpenAIServer, runs_dir: Path, *args: str) -> Any:
    return run_cli("batch", *args, "--runs-dir", str(runs_dir), "--base-url", server.base_url, key=TEST_KEY)


def rows_of(batch_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (batch_dir / "batch.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fleet(seed_script: dict[str, Any]) -> Any:
    with FakeOpenAIServer(scripted_handler(seed_script), latency=0.01) as fake:
        yield fake


def test_a_folder_with_an_unreadable_file(fleet, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 21)
    (folder / "broken.txt").write_bytes(b"\x00\x01\x02 not text \x00" * 20)
    (folder / "notes.csv").write_text("not an article type", encoding="utf-8")  # not listed
    result = batch_cli(fleet, runs_dir, str(folder), "--concurrency", "8")
    assert result.exit_code == 3, result.stderr
    batch_dir = Path(result.stdout.strip().splitlines()[-1])
    assert batch_dir.parent == runs_dir / "batches"
    rows = rows_of(batch_dir)
    assert [Path(row["source"]).name for row in rows] == ["broken.txt"] + [f"oped-{n:02d}.txt" for n in range(1, 22)]
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["run"] is None and "broken.txt" in failed[0]["error"]
    complete = [row for row in rows if row["status"] == "complete"]
    assert len(complete) == 21 and all(row["claims_ok"] == 8 and row["tokens"] > 0 for row in complete)
    for row in complete:
        brief = read_brief(Path(row["run"]))
        assert schemas.validate("brief", brief) == [] and brief["article"]["title"].startswith("Op-ed")
        assert Path(row["run"]).parent == runs_dir
    check = run_cli("validate", complete[0]["run"])
    assert check.exit_code == 0, check.stdout + check.stderr
    with open(batch_dir / "summary.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 22 and Counter(line["status"] for line in table) == {"complete": 21, "failed": 1}
    index = (batch_dir / "index.html").read_text(encoding="utf-8")
    assert index.count('brief.html"') == 21 and "21 complete" in index and "<script" not in index
    first = complete[0]
    assert f'href="../../{Path(first["run"]).name}/brief.html"' in index
    manifest = json.loads((batch_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["endpoint"] == fleet.base_url
    assert manifest["totals"]["complete"] == 21 and manifest["settings"]["concurrency"] == 8
    assert TEST_KEY not in (batch_dir / "manifest.json").read_text(encoding="utf-8")
    # Every article was asked once per unit: 1 extraction, 8 claims, 1 synthesis.
    assert Counter(article_of(r) for r in fleet.requests) == {f"Op-ed {n:02d}": 10 for n in range(1, 22)}
    assert len(result.stderr.splitlines()) == 2  # not a terminal: the summary, no progress flood
    listed = run_cli("runs", "--runs-dir", str(runs_dir))
    assert "batches" not in listed.stdout  # the batch record is not a run


def test_a_feed_with_metadata_and_a_bad_line(fleet, runs_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "two.txt").write_text(variant(2), encoding="utf-8")
    lines = [
        {"id": "a1", "text": variant(1), "title": "Given <i>title</i>", "author": "A. Writer", "date": "2016-03-15"},
        {"id": "a2", "path": str(tmp_path / "two.txt")},
        {"text": "x", "url": "https://example.org/"},  # two inputs: a failed row
        "not json",
        {"url": f"{fleet.base_url}/no-such-page", "title": "Gone"},  # a 404: its row
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    result = batch_cli(fleet, runs_dir, "--from", str(feed), "--json", "--allow-private-hosts")
    assert result.exit_code == 3, result.stderr
    summary = json.loads(result.stdout)
    assert summary["totals"]["complete"] == 2 and summary["totals"]["failed"] == 3
    rows = rows_of(Path(summary["batch"]))
    assert [row["id"] for row in rows[:2]] == ["a1", "a2"]
    article = read_brief(Path(rows[0]["run"]))["article"]
    assert (article["title"], article["author"], article["date"]) == ("Given <i>title</i>", "A. Writer", "2016-03-15")
    index = (Path(summary["batch"]) / "index.html").read_text(encoding="utf-8")
    assert "Given &lt;i&gt;title&lt;/i&gt;</a>" in index and "<i>" not in index  # escaped, and linked
    assert "exactly one of text, html, url or path" in rows[2]["error"]
    assert "not a JSON object" in rows[3]["error"]
    assert "404" in rows[4]["error"] and rows[4]["source"].endswith("/no-such-page")


def test_a_list_file_skips_blank_lines_and_comments(fleet, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# the day's op-eds\n\n{folder / 'oped-01.txt'}\n{folder / 'oped-02.txt'}\n", encoding="utf-8")
    result = batch_cli(fleet, runs_dir, "--from", str(listing), "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert [row["status"] for row in rows_of(Path(result.stdout.strip()))] == ["complete", "complete"]


def test_stage_models_apply_to_every_article_and_are_recorded(fleet, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 2)
    result = batch_cli(fleet, runs_dir, str(folder), "--rebut-model", "gpt-4o", "-q")
    assert result.exit_code == 0, result.stderr
    assert {r.body["model"] for r in fleet.requests if r.unit.startswith("C")} == {"gpt-4o"}
    assert {r.body["model"] for r in fleet.requests if not r.unit.startswith("C")} == {"gpt-4.1-mini"}
    batch_dir = Path(result.stdout.strip())
    assert json.loads((batch_dir / "manifest.json").read_text(encoding="utf-8"))["settings"]["rebut_model"] == "gpt-4o"
    for row in rows_of(batch_dir):
        assert (
            json.loads((Path(row["run"]) / "manifest.json").read_text(encoding="utf-8"))["models"]["rebut"] == "gpt-4o"
        )


def test_max_failures_stops_a_misconfigured_batch(runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 12)
    with FakeOpenAIServer(lambda unit, body: FakeResponse(status=400, error_message="bad model")) as broken:
        result = batch_cli(
            broken, runs_dir, str(folder), "--max-failures", "3", "--concurrency", "1", "--max-retries", "0"
        )
    assert result.exit_code == 1
    assert "3 articles failed (--max-failures 3)" in result.stderr.splitlines()[-1]
    assert result.stderr.splitlines()[-1].startswith("error: ") and "--resume" in result.stderr.splitlines()[-1]
    rows = rows_of(Path(result.stdout.strip().splitlines()[-1]))
    assert len(rows) == 12 and 1 <= sum(row["status"] == "not started" for row in rows) < 12  # stopped early
    assert len({article_of(r) for r in broken.requests}) < 12


def test_refused_credentials_stop_the_batch_at_once(runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 10)
    with FakeOpenAIServer(lambda unit, body: FakeResponse(status=401)) as refusing:
        result = batch_cli(refusing, runs_dir, str(folder), "--concurrency", "2")
        asked = len(refusing.requests)
    assert result.exit_code == 1
    line = one_error_line_of_last(result)
    assert "refused the credentials" in line and "counterpoint batch --resume" in line
    assert asked <= 4  # the articles open at that moment, not all ten
    assert TEST_KEY not in result.stderr + result.stdout


def one_error_line_of_last(result: Any) -> str:
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return str(line)


def test_global_concurrency_across_articles(seed_script: dict[str, Any], runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 6)
    with FakeOpenAIServer(scripted_handler(seed_script), latency=0.05) as fake:
        result = batch_cli(fake, runs_dir, str(folder), "--concurrency", "5", "--no-cache")
        assert result.exit_code == 0, result.stderr
        assert max_in_flight(fake.requests) == 5  # the limit is reached and never passed
        assert len({article_of(r) for r in fake.requests}) == 6


def test_sigterm_then_resume_asks_finished_articles_nothing(
    seed_script: dict[str, Any], runs_dir: Path, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 6)
    answer = scripted_handler(seed_script)
    held = {f"Op-ed {n:02d}" for n in (4, 5, 6)}  # their claim C1 hangs until released
    release = threading.Event()

    def handler(unit: str, body: dict[str, Any]) -> Any:
        hang = unit == "C1" and any(name in json.dumps(body.get("messages")) for name in held)
        return FakeResponse(content=answer(unit, body), delay=30 if hang and not release.is_set() else 0.01)

    with FakeOpenAIServer(handler) as fake:
        args = ["batch", str(folder), "--runs-dir", str(runs_dir), "--base-url", fake.base_url, "--no-cache"]
        process = start_counterpoint([*args, "--concurrency", "6"], env={"OPENAI_API_KEY": TEST_KEY})
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                len(list(runs_dir.glob("*/brief.json"))) < 3 or len(list(runs_dir.glob("*/units/C8.json"))) < 6
            ):
                time.sleep(0.05)
            assert len(list(runs_dir.glob("*/brief.json"))) == 3, "articles 1-3 should have finished"
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == 130, stderr
        assert "interrupted" in stderr.splitlines()[-1] and "counterpoint batch --resume" in stderr
        batch_dir = Path(stdout.strip().splitlines()[-1])
        assert {row["status"] for row in rows_of(batch_dir) if row["title"][:8] in held} == {"partial"}
        seen = len(fake.requests)

        release.set()
        result = run_cli("batch", "--resume", "latest", "--runs-dir", str(runs_dir), key=TEST_KEY)
        assert result.exit_code == 0, result.stderr
        assert Path(result.stdout.strip().splitlines()[-1]) == batch_dir
        again = fake.requests[seen:]
    assert {article_of(r) for r in again} == held  # finished articles: not asked again
    # The interrupted articles resumed at unit level: only what had not finished was asked again.
    assert sorted(r.unit for r in again) == ["C1", "C1", "C1", "synthesize", "synthesize", "synthesize"]
    rows = rows_of(batch_dir)
    assert len(rows) == 6 and all(row["status"] == "complete" for row in rows)
    for row in rows:
        assert schemas.validate("brief", read_brief(Path(row["run"]))) == []
    assert len(list(runs_dir.glob("*/brief.json"))) == 6  # resumed in their own runs, none started twice


def test_usage_errors(runs_dir: Path, tmp_path: Path) -> None:
    assert run_cli("batch").exit_code == 2
    assert run_cli("batch", str(tmp_path), "--resume", "latest").exit_code == 2
    empty = run_cli("batch", str(tmp_path), "--runs-dir", str(runs_dir), "--base-url", "http://127.0.0.1:9/v1")
    assert empty.exit_code == 1 and "no articles" in one_error_line(empty)
    none = run_cli("batch", "--resume", "latest", "--runs-dir", str(runs_dir))
    assert none.exit_code == 1 and "no batches" in one_error_line(none)


def test_one_429_back_off_for_every_article(seed_script: dict[str, Any], runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 4)
    answer = scripted_handler(seed_script)
    first = threading.Lock()

    def handler(unit: str, body: dict[str, Any]) -> Any:
        if unit.startswith("C") and first.acquire(blocking=False):  # the first rebuttal anywhere
            return FakeResponse(status=429, headers={"Retry-After": "0.6"})
        return FakeResponse(content=answer(unit, body), delay=0.05)

    with FakeOpenAIServer(handler) as fake:
        result = batch_cli(fake, runs_dir, str(folder), "--concurrency", "4", "--no-cache")
        assert result.exit_code == 0, result.stderr
        (limited,) = [r for r in fake.requests if r.status == 429]
        assert limited.answered is not None
        during = [r for r in fake.requests if limited.answered + 0.05 < r.received < limited.answered + 0.5]
    assert during == []  # no article sent anything while the endpoint asked for a pause


def test_progress_line_on_a_terminal() -> None:
    import io

    from pipeline.batch_progress import BatchProgress

    stream = io.StringIO()
    progress = BatchProgress(10, 2, stream=stream, live=True)
    progress.attempt({"usage": {"prompt_tokens": 1000, "completion_tokens": 234}})
    progress.finished({"status": "complete", "run": "x", "cost_usd": 0.01})
    progress.finished({"status": "failed", "run": None, "cost_usd": None})
    progress.tick(5)
    line = stream.getvalue()
    assert line.startswith("\r") and "articles 4/10 done, 1 failed, 5 calls in flight, 1,234 tokens, $0.0100" in line
    assert "ETA " in line
    logged = io.StringIO()
    piped = BatchProgress(10, stream=logged, live=False)
    piped.tick(1)
    assert logged.getvalue() == ""  # not a terminal: no line until LOG_EVERY has passed
    piped._last_line -= 60
    piped.tick(1)
    assert logged.getvalue().startswith("articles 0/10 done") and logged.getvalue().count("\n") == 1
    quiet = io.StringIO()
    BatchProgress(10, stream=quiet, live=True, quiet=True).tick(3)
    assert quiet.getvalue() == ""


def test_a_line_of_a_list_or_feed_that_is_not_utf8_is_its_row(fleet, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 2)
    listing = tmp_path / "list.txt"
    listing.write_bytes(
        f"{folder / 'oped-01.txt'}\n".encode() + b"caf\xe9.txt\n" + f"{folder / 'oped-02.txt'}\n".encode()
    )
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b'{"text": "caf\xe9"}\n')
    result = batch_cli(fleet, runs_dir, "--from", str(listing), "--from", str(feed), "-q")
    assert result.exit_code == 3, result.stderr
    rows = rows_of(Path(result.stdout.strip()))
    assert [row["status"] for row in rows] == ["complete", "failed", "complete", "failed"]
    assert rows[1]["error"] == f"{listing}:2 is not UTF-8 text; save the list as UTF-8"
    assert rows[3]["error"] == f"{feed}:1 is not UTF-8 text; save the list as UTF-8"


def test_a_resumed_list_reads_its_relative_paths_where_the_batch_started(
    fleet, runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_folder(tmp_path, 1)
    (tmp_path / "list.txt").write_text("articles/oped-01.txt\narticles/oped-02.txt\n", encoding="utf-8")
    (tmp_path / "feed.jsonl").write_text('{"path": "articles/oped-03.txt"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    first = batch_cli(fleet, runs_dir, "--from", "list.txt", "--from", "feed.jsonl", "-q")
    assert first.exit_code == 3, first.stderr  # 02 and 03 do not exist yet
    batch_dir = Path(first.stdout.strip())
    assert [row["source"] for row in rows_of(batch_dir)] == [
        str(tmp_path / "articles" / f"oped-{n:02d}.txt") for n in (1, 2, 3)
    ]
    for n in (2, 3):
        (tmp_path / "articles" / f"oped-{n:02d}.txt").write_text(variant(n), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "articles").mkdir(parents=True)
    for n in (2, 3):  # decoys at the same relative paths: a resume from here must not read them
        (elsewhere / "articles" / f"oped-{n:02d}.txt").write_text(variant(90 + n), encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    resumed = batch_cli(fleet, runs_dir, "--resume", str(batch_dir), "-q")
    assert resumed.exit_code == 0, resumed.stderr
    titles = [read_brief(Path(row["run"]))["article"]["title"][:8] for row in rows_of(batch_dir)]
    assert titles == ["Op-ed 01", "Op-ed 02", "Op-ed 03"]


def test_progress_and_summary_count_one_thing_in_the_singular() -> None:
    import io

    from pipeline.batch_progress import BatchProgress

    stream = io.StringIO()
    progress = BatchProgress(1, stream=stream, live=False)
    progress.attempt({"usage": {"prompt_tokens": 1, "completion_tokens": 0}})
    progress.batch_job({"job": "b1", "status": "validating", "total": 1})
    assert "1 call in flight, 1 token," in progress.line(1)
    assert "2 calls in flight" in progress.line(2)
    totals = {"articles": 1, "complete": 1, "partial": 0, "failed": 0, "claims_ok": 1, "claims_failed": 0}
    progress.summary({**totals, "tokens": 1, "cost_usd": None}, "runs/batches/x", 0.5)
    said = stream.getvalue()
    assert "batch b1 validating: 1 request\n" in said.replace("batch job", "batch")
    assert "batch: 1 article: 1 complete" in said and "1 claim answered" in said and "1 token," in said
    assert "1 articles" not in said and "1 claims" not in said


def test_a_repeated_source_is_briefed_once_and_ids_are_unique(fleet, runs_dir: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 2)
    (folder / "sub").mkdir()
    (folder / "sub" / "oped-01.txt").write_text(variant(3), encoding="utf-8")
    again = tmp_path / "link.txt"  # the same file by another name
    again.symlink_to(folder / "oped-01.txt")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'oped-02.txt'}\n", encoding="utf-8")
    result = batch_cli(fleet, runs_dir, str(folder), str(again), str(folder / "sub"), "--from", str(listing), "-q")
    assert result.exit_code == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert warnings == [
        f"warning: {again} was given before (as {folder / 'oped-01.txt'}); it is briefed once",
        f"warning: {folder / 'oped-02.txt'} was given before; it is briefed once",
    ]
    rows = rows_of(Path(result.stdout.strip()))
    assert [row["id"] for row in rows] == ["oped-01.txt", "oped-02.txt", "oped-01.txt-2"]
    assert [row["status"] for row in rows] == ["complete"] * 3
    extracted = Counter(article_of(request) for request in fleet.requests_for("extract"))
    assert extracted == {"Op-ed 01": 1, "Op-ed 02": 1, "Op-ed 03": 1}  # each article paid for once


def test_a_stopped_batch_records_every_source_and_resume_finishes_it(
    seed_script: dict[str, Any], runs_dir: Path, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 12)
    for name in ("bad-1.pdf", "bad-2.pdf", "bad-3.pdf"):
        (folder / name).write_text("not a pdf", encoding="utf-8")
    answer = scripted_handler(seed_script)

    def refusing(unit: str, body: dict[str, Any]) -> Any:  # every claim fails while the model is "refuse"
        if body.get("model") == "refuse" and unit.startswith("C"):
            return FakeResponse(status=400, error_message="refused")
        return FakeResponse(content=answer(unit, body), delay=0.05)

    with FakeOpenAIServer(refusing) as fake:
        args = ("--concurrency", "2", "--max-retries", "0", "--reasks", "0", "--no-cache")
        first = batch_cli(fake, runs_dir, str(folder), "--model", "refuse", "--max-failures", "2", *args)
        assert first.exit_code == 1, first.stderr
        batch_dir = Path(first.stdout.strip().splitlines()[-1])
        rows = rows_of(batch_dir)
        assert len(rows) == 15  # one line per source however the batch ended
        statuses = Counter(row["status"] for row in rows)
        assert statuses["not started"] >= 1 and statuses["complete"] == 0
        unstarted = [row for row in rows if row["status"] == "not started"]
        assert all(row["error"].startswith("stopped before it started: ") and row["run"] is None for row in unstarted)
        assert all(row["error"] for row in rows)
        with open(batch_dir / "summary.csv", encoding="utf-8") as handle:
            assert len(list(csv.DictReader(handle))) == 15
        summary = next(line for line in first.stderr.splitlines() if line.startswith("batch: "))
        assert summary.startswith(f"batch: 15 articles: 0 complete, {statuses['partial']} partial, 2 failed, ")
        assert f", {statuses['not started']} not started;" in summary  # every source counted
        assert json.loads((batch_dir / "manifest.json").read_text(encoding="utf-8"))["totals"]["articles"] == 15
        index = (batch_dir / "index.html").read_text(encoding="utf-8")
        assert f"2 failed, {statuses['not started']} not started.</p>" in index
        assert [p for p in runs_dir.iterdir() if p.name != "batches" and not (p / "manifest.json").is_file()] == []
        assert "unknown" not in run_cli("runs", "--runs-dir", str(runs_dir)).stdout
        # The printed resume: the two recorded failures fail again without counting, the rest go on.
        again = batch_cli(fake, runs_dir, "--resume", str(batch_dir), *args[2:])
        assert again.exit_code == 3, again.stderr
        assert Counter(row["status"] for row in rows_of(batch_dir)) == {"partial": 12, "failed": 3}
        fixed = batch_cli(fake, runs_dir, "--resume", str(batch_dir), "--model", "gpt-4.1-mini", "--force", *args[2:])
    rows = rows_of(batch_dir)
    assert Counter(row["status"] for row in rows) == {"complete": 12, "failed": 3}, fixed.stderr
    assert fixed.exit_code == 3


def test_a_batch_where_every_article_fails_says_why_in_one_line(fleet, runs_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01 not text \x00" * 20)
    for args in ((str(tmp_path / "nonexistent_dir"),), ("-q", str(bad))):
        result = batch_cli(fleet, runs_dir, *args)
        assert result.exit_code == 1
        line = one_error_line_of_last(result)
        assert "every article failed" in line and args[-1] in line
        assert "batch.jsonl" in line and "counterpoint batch --resume" in line
        assert [text for text in result.stderr.splitlines() if text.startswith("error:")] == [line]


def test_a_resume_on_another_endpoint_is_refused_up_front(fleet, runs_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\x00\x01 not text \x00" * 20)
    folder = make_folder(tmp_path, 1)
    first = batch_cli(fleet, runs_dir, str(folder), str(tmp_path / "bad.txt"), "-q")
    assert first.exit_code == 3, first.stderr
    batch_dir = Path(first.stdout.strip())
    before = (batch_dir / "batch.jsonl").read_text(encoding="utf-8")
    with FakeOpenAIServer(lambda unit, body: FakeResponse(status=500)) as other:
        refused = batch_cli(other, runs_dir, "--resume", "latest", "-q")
        assert refused.exit_code == 1 and refused.stdout == ""
        line = one_error_line(refused)
        assert "cannot resume batch" in line and fleet.base_url in line and "--force" in line
        assert (batch_dir / "batch.jsonl").read_text(encoding="utf-8") == before and other.requests == []
        forced = batch_cli(other, runs_dir, "--resume", "latest", "--force")
    assert forced.exit_code == 3 and "warning: " in forced.stderr
    assert Path(forced.stdout.strip().splitlines()[-1]) == batch_dir
