"""The brief's entries: a claim's and the synthesis' entry, their statuses and the one word
people see for each, and the brief dict assembled and validated against schemas/brief.schema.json.

The renderers (markdown.py, html.py) and progress lines import this module, never each other.
"""

from __future__ import annotations

from typing import Any

from .. import schemas
from ..errors import UnitFailed

# The words a claim's or the synthesis' outcome is shown with, in the order reports count them.
STATUS_LABELS = ("ok", "failed", "refused", "skipped", "interrupted")

_EMPTY_SYNTHESIS: dict[str, Any] = {
    "counter_thesis": None,
    "strongest_rebuttals": [],
    "rhetoric": [],
    "open_questions": [],
    "caveats": [],
}


def failure(error: UnitFailed | None) -> dict[str, str] | None:
    return {"kind": error.kind, "message": str(error)} if error else None


def claim_entry(claim: dict[str, Any], rebuttal: dict[str, Any] | None, error: UnitFailed | None) -> dict[str, Any]:
    """One claim as the brief holds it: extraction fields, then its stage-2 result or failure."""
    status = "ok" if rebuttal is not None else ("refused" if error and error.kind == "refused" else "failed")
    return {
        **{key: claim[key] for key in ("id", "text", "quote", "start", "end", "type", "centrality", "check_worthy")},
        "status": status,
        "error": failure(error),
        "steelman": rebuttal["steelman"] if rebuttal else None,
        "rebuttals": rebuttal["rebuttals"] if rebuttal else [],
        "missing_context": rebuttal["missing_context"] if rebuttal else [],
    }


def checks_summary(counts: dict[str, int] | None) -> str | None:
    """The brief's verification checks for people, the one wording every report uses:
    "5 to verify (2 figures, 1 date, 2 names)"; None for a brief written before checks."""
    if counts is None:
        return None
    kinds = [(kind, counts.get(kind, 0)) for kind in ("figure", "date", "name", "url", "citation")]
    parts = ", ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in kinds if n)
    return f"{counts.get('total', 0)} to verify" + (f" ({parts})" if parts else "")


def check_words(item: dict[str, Any]) -> str | None:
    """An item's checks as one line: '"2015" (date), "Paris agreement" (citation)'; None if none."""
    checks = item.get("checks") or []
    return ", ".join(f'"{check["text"]}" ({check["kind"]})' for check in checks) or None


def status_label(entry: dict[str, Any]) -> str:
    """A claim's or the synthesis' outcome for people, the one word every renderer and the progress
    lines use: ok, refused, failed, or (when a stopped run never reached it) skipped or interrupted."""
    kind = (entry.get("error") or {}).get("kind")
    return kind if entry["status"] != "ok" and kind in ("skipped", "interrupted") else entry["status"]


def review_line(review: dict[str, Any]) -> str:
    """Who reviewed a brief and when, and what the review kept: the line every reviewed export shows."""
    done = review["progress"]
    who = ", ".join(review["reviewers"]) or review["reviewer"] or "an unnamed reviewer"
    return (
        f"Reviewed by {who}, last change {review['updated']} (revision {review['revision']}): of "
        f"{done['total']} rebuttals, {done['accept']} accepted, {done['edit']} edited, {done['reject']} rejected "
        f"and {done['total'] - done['decided']} undecided; rejected and undecided ones are left out."
    )


def strongest_rebuttals(brief: dict[str, Any]) -> list[dict[str, Any]]:
    """The synthesis' strongest rebuttals, strongest first; ties (and ids not in the brief, last)
    keep the synthesis' order, as the sort is stable."""
    by_id = {r["id"]: (claim["id"], r) for claim in brief["claims"] for r in claim["rebuttals"]}
    items = [
        {"id": rid, "claim": by_id[rid][0], "rebuttal": by_id[rid][1]}
        if rid in by_id
        else {"id": rid, "claim": None, "rebuttal": None}
        for rid in brief["synthesis"]["strongest_rebuttals"]
    ]
    return sorted(items, key=lambda item: -item["rebuttal"]["strength"] if item["rebuttal"] else 1)


def synthesis_entry(synthesis: dict[str, Any] | None, error: UnitFailed | None) -> dict[str, Any]:
    if synthesis is not None:
        return {"status": "ok", "error": None, **synthesis}
    if error is None:
        return {"status": "skipped", "error": None, **_EMPTY_SYNTHESIS}
    status = "refused" if error.kind == "refused" else "failed"
    return {"status": status, "error": failure(error), **_EMPTY_SYNTHESIS}


def overall_status(thesis: str | None, claims: list[dict[str, Any]], synthesis: dict[str, Any]) -> str:
    if thesis is None:
        return "failed"
    if synthesis["status"] == "ok" and all(claim["status"] == "ok" for claim in claims):
        return "complete"
    return "partial"


def assemble(
    *,
    article: dict[str, Any],
    thesis: str | None,
    extraction_error: UnitFailed | None,
    claims: list[dict[str, Any]],
    synthesis: dict[str, Any],
    notes: list[str],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The brief as a dict, validated against its schema (a failure here is a bug, not bad input)."""
    brief = {
        "schema_version": 1,
        "status": overall_status(thesis, claims, synthesis),
        "article": article,
        "thesis": thesis,
        "extraction_error": failure(extraction_error),
        "claims": claims,
        "synthesis": synthesis,
        "notes": notes,
        "run": run,
    }
    problems = schemas.validate("brief", brief)
    if problems:
        raise ValueError("assembled brief breaks schemas/brief.schema.json: " + "; ".join(problems[:5]))
    return brief
