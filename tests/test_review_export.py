"""review.json outside the app: `counterpoint export` (md, html, docx, json; --reviewed), and what
`runs`, `show` and `validate` say about a review."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.review.store import update_review

from .conftest import one_error_line, read_brief
from .htmltree import parse
from .review_helpers import make_run, older_brief, rebuttals

NOTE = "Lead with this one; the lease is public."
CLAIM_NOTE = "Ask the desk for the 2017 treaty text."
EDITED = "A tighter rebuttal, in the desk's words."


@pytest.fixture
def run_dir(cli) -> Path:
    return make_run(cli)


@pytest.fixture
def reviewed(run_dir: Path) -> dict[str, Any]:
    """A review: the first rebuttal accepted with a note, the second edited, the last rejected."""
    every = rebuttals(run_dir)
    picks = {"accepted": every[0], "edited": every[1], "rejected": every[-1], "undecided": every[2]}
    update_review(
        run_dir,
        read_brief(run_dir),
        {
            "decisions": {
                every[0]["id"]: {"decision": "accept", "note": NOTE},
                every[1]["id"]: {"decision": "edit", "text": EDITED},
                every[-1]["id"]: {"decision": "reject", "note": "weak"},
            },
            "claim_notes": {every[0]["claim"]: CLAIM_NOTE},
        },
        "Ana Editor",
    )
    return picks


def export(cli, run_dir: Path, *args: str) -> Any:
    return cli("export", run_dir.name, "--runs-dir", str(run_dir.parent), *args)


def test_export_without_review_is_the_brief(cli, run_dir: Path) -> None:
    for fmt, name in (("md", "brief.md"), ("html", "brief.html"), ("json", "brief.json")):
        result = export(cli, run_dir, "--format", fmt)
        assert result.exit_code == 0, result.stderr
        if fmt == "json":
            assert json.loads(result.stdout) == read_brief(run_dir)
        else:
            assert result.stdout == (run_dir / name).read_text(encoding="utf-8")


def test_reviewed_markdown_keeps_accepted_and_edited_with_notes(cli, run_dir: Path, reviewed: dict[str, Any]) -> None:
    result = export(cli, run_dir, "--reviewed", "--format", "md")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert reviewed["accepted"]["argument"] in text and NOTE in text and CLAIM_NOTE in text
    assert EDITED in text and f"the model wrote: {reviewed['edited']['argument']}" in text
    assert reviewed["rejected"]["argument"] not in text and "weak" not in text
    assert reviewed["undecided"]["argument"] not in text
    total = len(rebuttals(run_dir))
    assert "Reviewed by Ana Editor, last change 20" in text
    assert f"(revision 1): of {total} rebuttals, 1 accepted, 1 edited, 1 rejected and {total - 3} undecided" in text


def test_reviewed_json_and_html(cli, run_dir: Path, reviewed: dict[str, Any]) -> None:
    data = json.loads(export(cli, run_dir, "--reviewed", "--format", "json").stdout)
    kept = [r for c in data["claims"] for r in c["rebuttals"]]
    assert [r["id"] for r in kept] == [reviewed["accepted"]["id"], reviewed["edited"]["id"]]
    assert kept[0]["review_note"] == NOTE and kept[0]["original_argument"] is None
    assert kept[1]["argument"] == EDITED and kept[1]["original_argument"] == reviewed["edited"]["argument"]
    assert data["review"]["reviewers"] == ["Ana Editor"] and data["review"]["revision"] == 1
    assert set(data["synthesis"]["strongest_rebuttals"]) <= {r["id"] for r in kept}

    html = export(cli, run_dir, "--reviewed", "--format", "html").stdout
    dom = parse(html)
    assert not dom.find_all("script"), "the reviewed page is as self-contained as the brief"
    text = dom.text()
    assert NOTE in text and CLAIM_NOTE in text and EDITED in text and "Reviewed by Ana Editor" in text
    assert reviewed["rejected"]["argument"] not in text
    assert not [li for li in dom.find_all("li") if li.attrs.get("id") == f"rebuttal-{reviewed['rejected']['id']}"]


def test_docx_export_to_a_file(cli, run_dir: Path, reviewed: dict[str, Any], tmp_path: Path) -> None:
    from docx import Document

    plain, done = tmp_path / "brief.docx", tmp_path / "reviewed.docx"
    assert export(cli, run_dir, "--format", "docx", "-o", str(plain)).exit_code == 0
    result = export(cli, run_dir, "--format", "docx", "--reviewed", "-o", str(done))
    assert result.exit_code == 0 and result.stdout == "" and f"wrote {done}" in result.stderr
    whole = "\n".join(p.text for p in Document(io.BytesIO(plain.read_bytes())).paragraphs)
    text = "\n".join(p.text for p in Document(io.BytesIO(done.read_bytes())).paragraphs)
    brief = read_brief(run_dir)
    assert brief["thesis"] in text and brief["synthesis"]["counter_thesis"] in text
    assert all(claim["text"] in text for claim in brief["claims"])
    assert reviewed["rejected"]["argument"] in whole and reviewed["rejected"]["argument"] not in text
    assert reviewed["accepted"]["argument"] in text and NOTE in text and EDITED in text and CLAIM_NOTE in text
    assert "Reviewed by Ana Editor" in text and "Reviewed by" not in whole


def test_export_errors_are_one_line(cli, run_dir: Path, tmp_path: Path) -> None:
    missing = export(cli, run_dir, "--reviewed")
    assert missing.exit_code == 1
    assert "has no review yet; review it with 'counterpoint serve' first" in one_error_line(missing)
    nowhere = export(cli, run_dir, "-o", str(tmp_path / "no" / "such" / "dir" / "x.md"))
    assert nowhere.exit_code == 1 and "cannot write" in one_error_line(nowhere)
    unknown = cli("export", "nope", "--runs-dir", str(run_dir.parent))
    assert unknown.exit_code == 1 and "no run 'nope'" in one_error_line(unknown)

    (run_dir / "brief.json").write_text(json.dumps(older_brief(run_dir)), encoding="utf-8")
    older = export(cli, run_dir, "--format", "md")  # written before verification checks: still fine
    assert older.exit_code == 0, older.stderr
    (run_dir / "brief.json").write_text('{"status": "complete"}', encoding="utf-8")
    for fmt in ("md", "html", "json", "docx"):
        damaged = export(cli, run_dir, "--format", fmt, "-o", str(tmp_path / f"x.{fmt}"))
        assert damaged.exit_code == 1 and one_error_line(damaged) == (
            f"error: {run_dir / 'brief.json'} is damaged ($: 'schema_version' is a required property); "
            f"see 'counterpoint validate {run_dir}'"
        )


def test_runs_and_show_know_the_review(cli, run_dir: Path, reviewed: dict[str, Any]) -> None:
    total = len(rebuttals(run_dir))
    rows = json.loads(cli("runs", "--runs-dir", str(run_dir.parent), "--json").stdout)
    assert rows[0]["review"] == {"decided": 3, "total": total, "accept": 1, "reject": 1, "edit": 1}
    table = cli("runs", "--runs-dir", str(run_dir.parent)).stdout.splitlines()
    assert table[0].split()[5] == "REVIEWED" and table[1].split()[5] == f"3/{total}"
    shown = cli("show", run_dir.name, "--runs-dir", str(run_dir.parent), "--format", "review")
    assert shown.exit_code == 0 and json.loads(shown.stdout) == json.loads((run_dir / "review.json").read_text())


def test_show_review_of_an_unreviewed_run_says_how(cli, run_dir: Path) -> None:
    shown = cli("show", run_dir.name, "--runs-dir", str(run_dir.parent), "--format", "review")
    assert shown.exit_code == 1 and "has no review.json yet" in one_error_line(shown)


def test_validate_checks_review_ids_against_the_brief(cli, run_dir: Path, reviewed: dict[str, Any]) -> None:
    assert cli("validate", run_dir.name, "--runs-dir", str(run_dir.parent)).exit_code == 0
    review = json.loads((run_dir / "review.json").read_text())
    review["decisions"]["C9-R4"] = review["decisions"].pop(reviewed["accepted"]["id"])
    review["claim_notes"]["C12"] = {"note": "x", "reviewer": None, "updated": "2026-11-29T00:00:00+00:00"}
    (run_dir / "review.json").write_text(json.dumps(review))
    result = cli("validate", run_dir.name, "--runs-dir", str(run_dir.parent))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "review.json: $.decisions.C9-R4: no rebuttal C9-R4 in the brief",
        "review.json: $.claim_notes.C12: no claim C12 in the brief",
    ]
    assert result.stderr == f"error: 2 problem(s) in {run_dir / 'review.json'}\n"  # not brief.json, which is fine
    review["decisions"]["C9-R4"]["decision"] = "maybe"
    (run_dir / "review.json").write_text(json.dumps(review))
    broken = cli("validate", run_dir.name, "--runs-dir", str(run_dir.parent))
    assert broken.exit_code == 1 and "review.json: $.decisions.C9-R4.decision: 'maybe' is not one of" in broken.stdout
    # A damaged review never stops a listing.
    (run_dir / "review.json").write_text("{not json")
    rows = json.loads(cli("runs", "--runs-dir", str(run_dir.parent), "--json").stdout)
    assert rows[0]["review"] is None


def test_concurrent_writes_on_one_revision_let_exactly_one_through(run_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.review.store import StaleRevision

    brief = read_brief(run_dir)
    ids = [r["id"] for r in rebuttals(run_dir)][:8]

    def write(rid: str) -> str:
        try:
            update_review(run_dir, brief, {"decisions": {rid: {"decision": "accept"}}, "revision": 0}, "Ana")
        except StaleRevision:
            return "stale"
        return "saved"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(write, ids))
    assert sorted(outcomes) == ["saved"] + ["stale"] * 7
    review = json.loads((run_dir / "review.json").read_text())
    assert review["revision"] == 1 and len(review["decisions"]) == 1
    with ThreadPoolExecutor(8) as pool:  # without a revision (scripts), every change is merged
        list(
            pool.map(lambda rid: update_review(run_dir, brief, {"decisions": {rid: {"decision": "reject"}}}, None), ids)
        )
    review = json.loads((run_dir / "review.json").read_text())
    assert review["revision"] == 9 and {e["decision"] for e in review["decisions"].values()} == {"reject"}
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".review.json")], "no temporary file left"
