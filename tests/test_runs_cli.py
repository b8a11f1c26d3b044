"""Finding and checking runs: `counterpoint runs`, `show` and `validate`."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.runs import RunDir, new_run_id

from .conftest import SEED, one_error_line, read_brief, read_manifest, run_cli, start_counterpoint

STATUSES = ["complete", "partial", "failed"]


@pytest.fixture
def seed_run(cli) -> Path:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    return result.run_dir


# -- runs -------------------------------------------------------------------------------------


def make_runs(runs_dir: Path, template: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`count` run directories holding only a manifest (derived from a real one), oldest first."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    made = []
    for index in range(count):
        when = start + timedelta(minutes=17 * index)
        manifest = copy.deepcopy(template)
        run_id = new_run_id(f"article {index}", now=when)
        manifest.update(
            run_id=run_id,
            status=STATUSES[index % 3],
            model=f"model-{index % 4}",
            created=when.isoformat(timespec="seconds"),
        )
        manifest["models"] = dict.fromkeys(manifest["models"], manifest["model"])  # every stage on the run's model
        manifest["article"]["title"] = f"Article number {index}"
        manifest["summary"].update(claims=index % 9, tokens=1000 + index, cost_usd=round(index / 1000, 6))
        run = RunDir(runs_dir / run_id)
        run.path.mkdir(parents=True)
        run.write_manifest(manifest)
        made.append(manifest)
    return made


def test_runs_lists_hundreds_of_runs_newest_first_from_their_manifests(cli, seed_run: Path, tmp_path: Path) -> None:
    template = read_manifest(seed_run)
    runs_dir = tmp_path / "many"
    made = make_runs(runs_dir, template, 300)
    (runs_dir / "20991231T000000Z-broken-aaaaaa").mkdir()
    (runs_dir / "20991231T000000Z-broken-aaaaaa" / "manifest.json").write_text("{not json")
    (runs_dir / "20991230T000000Z-empty-bbbbbb").mkdir()  # no manifest at all

    result = cli("runs", "--runs-dir", str(runs_dir), "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 302
    assert [row["id"] for row in rows[:2]] == ["20991231T000000Z-broken-aaaaaa", "20991230T000000Z-empty-bbbbbb"]
    assert all(row["status"] == "unknown" and row["claims"] is None for row in rows[:2])
    newest_first = list(reversed(made))
    assert [row["id"] for row in rows[2:]] == [m["run_id"] for m in newest_first]
    for row, manifest in zip(rows[2:], newest_first, strict=False):
        assert row["title"] == manifest["article"]["title"]
        assert row["model"] == manifest["model"] and row["status"] == manifest["status"]
        assert row["claims"] == manifest["summary"]["claims"] and row["tokens"] == manifest["summary"]["tokens"]
        assert row["cost_usd"] == manifest["summary"]["cost_usd"] and row["created"] == manifest["created"]
        assert row["path"] == str(runs_dir / manifest["run_id"])

    table = cli("runs", "--runs-dir", str(runs_dir))
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "CLAIMS", "TOKENS", "COST", "REVIEWED", "DATE", "MODEL", "TITLE"]
    assert len(lines) == 303
    assert lines[1].split()[:2] == ["20991231T000000Z-broken-aaaaaa", "unknown"]
    newest = newest_first[0]
    assert lines[3].split() == [
        newest["run_id"],
        newest["status"],
        str(newest["summary"]["claims"]),
        f"{newest['summary']['tokens']:,}",
        f"${newest['summary']['cost_usd']:.4f}",
        "-",
        *newest["created"][:16].split("T"),
        newest["model"],
        *newest["article"]["title"].split(),
    ]
    status_at = lines[0].index("STATUS")  # columns line up whatever the id's length
    assert lines[1][status_at:].startswith("unknown ") and lines[3][status_at:].startswith(newest["status"] + " ")


def test_runs_on_an_empty_or_missing_folder(cli, tmp_path: Path) -> None:
    result = cli("runs", "--runs-dir", str(tmp_path / "none"))
    assert result.exit_code == 0 and result.stdout == ""
    assert "no runs in" in result.stderr
    as_json = cli("runs", "--runs-dir", str(tmp_path / "none"), "--json")
    assert json.loads(as_json.stdout) == []


def test_runs_shows_a_real_run(cli, seed_run: Path, runs_dir: Path) -> None:
    rows = json.loads(cli("runs", "--runs-dir", str(runs_dir), "--json").stdout)
    brief = read_brief(seed_run)
    usage = brief["run"]["usage"]
    assert rows == [
        {
            "id": seed_run.name,
            "title": brief["article"]["title"],
            "model": brief["run"]["model"],
            "models": brief["run"]["models"],
            "status": "complete",
            "claims": 8,
            "tokens": usage["prompt_tokens"] + usage["completion_tokens"],
            "cost_usd": brief["run"]["cost_usd"],
            "cost_status": "priced",
            "created": brief["run"]["created"],
            "path": str(seed_run),
            "review": None,
        }
    ]


# -- show -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,name", [("md", "brief.md"), ("json", "brief.json"), ("html", "brief.html")])
def test_show_prints_each_format(cli, seed_run: Path, runs_dir: Path, fmt: str, name: str) -> None:
    for ref in ("latest", seed_run.name, seed_run.name[:20]):
        result = cli("show", ref, "--runs-dir", str(runs_dir), "--format", fmt)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == (seed_run / name).read_text(encoding="utf-8")


def test_show_defaults_to_markdown_of_the_latest_and_prints_the_path(cli, seed_run: Path, runs_dir: Path) -> None:
    assert cli("show", "--runs-dir", str(runs_dir)).stdout == (seed_run / "brief.md").read_text(encoding="utf-8")
    path = cli("show", "latest", "--runs-dir", str(runs_dir), "--format", "path")
    assert path.exit_code == 0 and path.stdout == f"{seed_run}\n"


def test_show_latest_is_the_newest_run(cli, runs_dir: Path) -> None:
    assert cli("run", str(SEED)).exit_code == 0
    second = cli("run", str(SEED)).run_dir
    # The one created last, whatever the random part of ids made within the same second says.
    assert cli("show", "latest", "--runs-dir", str(runs_dir), "--format", "path").stdout.strip() == str(second)


def test_show_refuses_an_ambiguous_prefix_and_an_unknown_id(cli, runs_dir: Path) -> None:
    for _ in range(2):
        assert cli("run", str(SEED)).exit_code == 0
    ambiguous = cli("show", "20", "--runs-dir", str(runs_dir))
    assert ambiguous.exit_code == 1 and ambiguous.stdout == ""
    assert one_error_line(ambiguous) == "error: '20' matches 2 runs; give more of the id"
    unknown = cli("show", "19990101T000000Z-nope", "--runs-dir", str(runs_dir))
    assert unknown.exit_code == 1
    assert one_error_line(unknown).startswith("error: no run '19990101T000000Z-nope'")


def test_show_of_a_directory_without_a_manifest_says_it_is_not_a_run(cli, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    result = cli("show", str(folder))
    assert result.exit_code == 1 and result.stdout == ""
    line = one_error_line(result)
    assert line.startswith(f"error: {folder} is not a run directory (no manifest.json)") and "run id" not in line


def test_show_says_what_to_do_when_the_page_is_missing(cli, seed_run: Path, runs_dir: Path) -> None:
    (seed_run / "brief.html").unlink()
    result = cli("show", "latest", "--runs-dir", str(runs_dir), "--format", "html")
    assert result.exit_code == 1
    assert "has no brief.html" in one_error_line(result)


def test_show_and_validate_of_a_run_still_going_say_so(cli, seed_run: Path, runs_dir: Path) -> None:
    """A run in progress (its lock held, here by this process) has no brief yet, and is not broken."""
    import os

    for name in ("brief.md", "brief.json"):
        (seed_run / name).unlink()
    with RunDir(seed_run).lock():
        shown = cli("show", "latest", "--runs-dir", str(runs_dir))
        checked = cli("validate", "latest", "--runs-dir", str(runs_dir))
    running = f"error: run {seed_run.name} is still running (pid {os.getpid()}); its "
    assert shown.exit_code == 1 and one_error_line(shown) == running + "brief.md is written when it finishes"
    assert checked.exit_code == 1 and one_error_line(checked) == running + "brief.json is written when it finishes"
    after = cli("show", "latest", "--runs-dir", str(runs_dir))  # the lock is gone: stopped early, not running
    assert "has no brief.md (the run may have been interrupted; finish it with" in one_error_line(after)


# -- validate ---------------------------------------------------------------------------------


def test_validate_accepts_a_real_run_and_its_brief_json(cli, seed_run: Path) -> None:
    for target in (seed_run, seed_run / "brief.json"):
        result = cli("validate", str(target))
        assert result.exit_code == 0, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith("ok: ") and "schema, ids and quotes" in result.stderr


def test_validate_lists_every_problem_of_a_tampered_brief(cli, seed_run: Path) -> None:
    brief = read_brief(seed_run)
    brief["claims"][0]["quote"] = "Putin never wanted anything in Syria."
    c2 = brief["claims"][1]["rebuttals"]
    c2[1]["id"] = c2[0]["id"]
    assert brief["claims"][2]["rebuttals"][0].pop("id") == "C3-R1"
    assert brief["synthesis"]["strongest_rebuttals"][3] == "C3-R1"
    brief["claims"][3]["centrality"] = 9
    brief["synthesis"]["strongest_rebuttals"].append("C7-R4")
    (seed_run / "brief.json").write_text(json.dumps(brief))

    result = cli("validate", str(seed_run))
    assert result.exit_code == 1
    problems = result.stdout.splitlines()
    expected = [
        "$.claims[0].quote: does not match the article at",
        f"$.claims[1].rebuttals[1].id: duplicate rebuttal id {c2[0]['id']}",
        "$.claims[2].rebuttals[0]: 'id' is a required property",
        "$.claims[3].centrality: 9 is not one of",
        "$.synthesis.strongest_rebuttals[3]: unknown rebuttal id C3-R1",  # the one whose id was removed
        "$.synthesis.strongest_rebuttals[4]: unknown rebuttal id C7-R4",
    ]
    for start in expected:
        assert sum(problem.startswith(start) for problem in problems) == 1, (start, problems)
    assert len(problems) == len(expected), problems
    assert one_error_line(result) == f"error: {len(expected)} problem(s) in {seed_run / 'brief.json'}"


def test_validate_checks_the_article_and_the_statuses(cli, seed_run: Path, tmp_path: Path) -> None:
    copy_dir = tmp_path / "copy"
    shutil.copytree(seed_run, copy_dir)
    article = (copy_dir / "article.txt").read_text()
    (copy_dir / "article.txt").write_text("Editor's note. " + article)  # every offset now points elsewhere
    brief = read_brief(copy_dir)
    brief["claims"][4].update(status="failed", error=None, steelman=None, rebuttals=[], missing_context=[])
    brief["synthesis"]["strongest_rebuttals"] = [
        r for r in brief["synthesis"]["strongest_rebuttals"] if not r.startswith("C5-")
    ]
    (copy_dir / "brief.json").write_text(json.dumps(brief))

    problems = cli("validate", str(copy_dir)).stdout.splitlines()
    assert problems[0].startswith("$.article.sha256: does not match the stored article.txt")
    quote_problems = [p for p in problems if ".quote: does not match the article" in p]
    assert len(quote_problems) == 8 + len(brief["synthesis"]["rhetoric"])
    assert all("(found at " in p for p in quote_problems), "it says where the quote really is"
    assert "$.claims[4]: status failed but no error saying why" in problems
    assert "$.status: 'complete', but its claims and synthesis make it 'partial'" in problems


def test_validate_a_brief_without_its_article_checks_what_it_can(cli, seed_run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone.json"
    shutil.copy(seed_run / "brief.json", alone)
    result = cli("validate", str(alone))
    assert result.exit_code == 0
    assert "schema and ids (no article.txt beside it)" in result.stderr


@pytest.mark.parametrize("content", ["this is not JSON {", b"\x89PNG\r\n\x1a\n\x00\xff"])
def test_validate_a_file_that_is_not_json_is_a_one_line_error(cli, tmp_path: Path, content: str | bytes) -> None:
    target = tmp_path / "brief.json"
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli("validate", str(target))
    assert result.exit_code == 1 and result.stdout == ""
    assert one_error_line(result).startswith(f"error: cannot read {target} as JSON")


def test_validate_a_folder_without_a_brief(cli, tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path))
    assert result.exit_code == 1
    assert one_error_line(result).startswith(f"error: cannot read {tmp_path / 'brief.json'}")


def test_runs_piped_into_a_reader_that_stops_early_is_quiet(cli, seed_run: Path, tmp_path: Path) -> None:
    """`counterpoint runs | head -1`: the closed pipe is not reported as an internal error."""
    runs_dir = tmp_path / "many"
    make_runs(runs_dir, read_manifest(seed_run), 50)
    process = start_counterpoint(["runs", "--runs-dir", str(runs_dir)])
    process.stdout.close()  # the reader is gone before anything is written
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert stderr == ""


def test_a_bug_is_one_line_naming_it_and_raises_under_counterpoint_debug(monkeypatch, runs_dir: Path) -> None:
    """conftest sets COUNTERPOINT_DEBUG=1 so a bug fails its test; without it, a user sees one line."""

    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("pipeline.runs.list_runs", broken)
    with pytest.raises(RuntimeError, match="boom"):
        run_cli("runs", "--runs-dir", str(runs_dir))
    monkeypatch.delenv("COUNTERPOINT_DEBUG")
    result = run_cli("runs", "--runs-dir", str(runs_dir))
    assert result.exit_code == 1 and result.stdout == ""
    assert one_error_line(result) == (
        "error: internal error (RuntimeError: boom); rerun with COUNTERPOINT_DEBUG=1 and report it"
    )
