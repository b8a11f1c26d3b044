"""`counterpoint export`: a run's brief for publication or the desk, as Markdown, HTML, DOCX or JSON;
with `reviewed`, the brief as the editor left it (accepted and edited rebuttals only, the edited
text in place of the model's, notes included, and who reviewed it when)."""

from __future__ import annotations

import copy
import json
from typing import Any

from ..brief import check_brief
from ..errors import RunDirError
from ..runs import RunDir
from .store import progress, read_review

KEPT = ("accept", "edit")


def reviewed_brief(brief: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
    """The brief with the editor's decisions applied. Rejected and undecided rebuttals are left out,
    an edited one carries the edited `argument` and its `original_argument`; `review_note` is on
    each rebuttal and claim, and `review` says who reviewed it, when, and what was decided."""
    out = copy.deepcopy(brief)
    decisions, notes = review["decisions"], review["claim_notes"]
    kept: set[str] = set()
    for claim in out["claims"]:
        claim["review_note"] = notes[claim["id"]]["note"] if claim["id"] in notes else None
        rebuttals = []
        for rebuttal in claim["rebuttals"]:
            entry = decisions.get(rebuttal["id"])
            if entry is None or entry["decision"] not in KEPT:
                continue
            rebuttal["review_note"] = entry["note"]
            rebuttal["original_argument"] = None
            if entry["decision"] == "edit":
                rebuttal["original_argument"], rebuttal["argument"] = rebuttal["argument"], entry["text"]
            rebuttals.append(rebuttal)
            kept.add(rebuttal["id"])
        claim["rebuttals"] = rebuttals
    synthesis = out["synthesis"]
    synthesis["strongest_rebuttals"] = [rid for rid in synthesis["strongest_rebuttals"] if rid in kept]
    reviewers = sorted({e["reviewer"] for e in [*decisions.values(), *notes.values()] if e["reviewer"]})
    out["review"] = {
        "reviewer": review["reviewer"],
        "reviewers": reviewers,
        "updated": review["updated"],
        "revision": review["revision"],
        "progress": progress(review),
    }
    return out


def export(run_dir: RunDir, fmt: str, *, reviewed: bool) -> str | bytes:
    """The brief of `run_dir` in `fmt`; text for md, html and json, bytes for docx."""
    brief = run_dir.read_brief()
    problems = check_brief(brief, None)  # as Brief.load checks it: older briefs pass
    if problems:  # every renderer relies on the brief's shape
        raise RunDirError(
            f"{run_dir.brief_path} is damaged ({problems[0]}); see 'counterpoint validate {run_dir.path}'"
        )
    if reviewed:
        review = read_review(run_dir.path)
        if review is None:
            raise RunDirError(
                f"run {run_dir.id} has no review yet; review it with 'counterpoint serve' first, "
                "or export without --reviewed"
            )
        brief = reviewed_brief(brief, review)
    if fmt == "json":
        return json.dumps(brief, indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        from ..brief.markdown import render_markdown

        return render_markdown(brief)
    if fmt == "docx":
        from ..brief.docx import render_docx

        return render_docx(brief)
    if fmt != "html":
        raise ValueError(f"unknown export format {fmt!r}; the formats are md, html, docx and json")
    from ..brief.html import render_html

    article = run_dir.article_text()
    return render_html(brief, article, name="reviewed.html.j2" if reviewed else "brief.html.j2")
