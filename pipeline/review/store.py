"""review.json: an editor's decisions on a run's rebuttals and notes on its claims.

The file sits beside brief.json and is only ever written here, atomically, under a lock, each write
raising its `revision` by one; a change made on an older revision is refused (`StaleRevision`), so
two browser tabs cannot silently overwrite each other.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import schemas
from ..errors import CounterpointError, RunDirError
from ..files import atomic_write, json_text
from ..runs import read_json, utc_now

REVIEW_NAME = "review.json"
DECISIONS = ("accept", "reject", "edit")
_WRITE_LOCK = threading.Lock()  # one writer at a time in this process (the server's worker threads)


class InvalidReview(CounterpointError):
    """A change to a review that cannot be applied (bad shape, unknown ids, an edit without text)."""


class StaleRevision(CounterpointError):
    """A change made on an older revision of the review than the stored one."""

    def __init__(self, given: int, current: int) -> None:
        super().__init__(
            f"the review changed since revision {given} (now revision {current}); reload it and make the change again"
        )
        self.current = current


def rebuttal_ids(brief: dict[str, Any]) -> list[str]:
    return [r["id"] for claim in brief["claims"] for r in claim["rebuttals"]]


def empty_review(run_id: str, brief: dict[str, Any]) -> dict[str, Any]:
    """The review of a run nobody has reviewed yet (revision 0, never written)."""
    return {
        "review_version": 1,
        "run_id": run_id,
        "revision": 0,
        "reviewer": None,
        "updated": None,
        "rebuttals_total": len(rebuttal_ids(brief)),
        "decisions": {},
        "claim_notes": {},
    }


def read_review(run_path: Path) -> dict[str, Any] | None:
    """The stored review, or None; a damaged one is a one-line RunDirError naming the file."""
    path = run_path / REVIEW_NAME
    if not path.is_file():
        return None
    review = read_json(path)
    problems = schemas.validate("review", review)
    if problems:
        raise RunDirError(f"{path} is not a valid review ({problems[0]}); fix or remove it")
    return dict(review)


def load_review(run_path: Path, brief: dict[str, Any]) -> dict[str, Any]:
    return read_review(run_path) or empty_review(run_path.name, brief)


def check_review(review: Any, brief: dict[str, Any]) -> list[str]:
    """What `validate` reports about a review.json: its schema, and ids that are not in the brief."""
    problems = schemas.validate("review", review)
    if problems:
        return problems
    known = set(rebuttal_ids(brief))
    claims = {claim["id"] for claim in brief["claims"]}
    return [f"$.decisions.{rid}: no rebuttal {rid} in the brief" for rid in review["decisions"] if rid not in known] + [
        f"$.claim_notes.{cid}: no claim {cid} in the brief" for cid in review["claim_notes"] if cid not in claims
    ]


def update_review(run_path: Path, brief: dict[str, Any], change: Any, reviewer: str | None) -> dict[str, Any]:
    """Merge `change` (schemas/review_update.schema.json) into the stored review and write it.

    Each field given for a rebuttal replaces the stored one and a field left out is kept; a
    decision of null clears it, and an entry left with neither decision nor note is dropped. A
    claim note that is empty or null is removed. A `revision` older than the stored one raises
    StaleRevision and writes nothing.
    """
    problems = schemas.validate("review_update", change)
    if problems:
        raise InvalidReview("; ".join(problems[:3]))
    _check_ids(change, brief)
    with _locked(run_path):
        review = load_review(run_path, brief)
        given = change.get("revision")
        if given is not None and given != review["revision"]:
            raise StaleRevision(given, review["revision"])
        now = utc_now()
        for rid, fields in change.get("decisions", {}).items():
            _merge_decision(review["decisions"], rid, fields, reviewer, now)
        for cid, note in change.get("claim_notes", {}).items():
            if note and note.strip():
                review["claim_notes"][cid] = {"note": note, "reviewer": reviewer, "updated": now}
            else:
                review["claim_notes"].pop(cid, None)
        review.update(revision=review["revision"] + 1, reviewer=reviewer, updated=now)
        review["rebuttals_total"] = len(rebuttal_ids(brief))
        atomic_write(run_path / REVIEW_NAME, json_text(review, indent=2) + "\n")
    return review


@contextmanager
def _locked(run_path: Path) -> Iterator[None]:
    """Hold the review for a read-merge-write: a thread lock for this server's worker threads and a
    flock on the run directory itself for another process (a second server; no lock file is made)."""
    with _WRITE_LOCK:
        fd = os.open(run_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _check_ids(change: dict[str, Any], brief: dict[str, Any]) -> None:
    known = set(rebuttal_ids(brief))
    unknown = [rid for rid in change.get("decisions", {}) if rid not in known]
    unknown += [cid for cid in change.get("claim_notes", {}) if cid not in {c["id"] for c in brief["claims"]}]
    if unknown:
        raise InvalidReview(f"not in this brief: {', '.join(sorted(unknown))}; use the ids the brief shows")


def _merge_decision(
    decisions: dict[str, Any], rid: str, fields: dict[str, Any], reviewer: str | None, now: str
) -> None:
    entry = {"decision": None, "note": None, "text": None, **decisions.get(rid, {}), **fields}
    if entry["decision"] == "edit" and not (entry["text"] or "").strip():
        raise InvalidReview(f"{rid}: an edit needs the edited text in 'text'")
    entry["note"] = entry["note"] if entry["note"] and entry["note"].strip() else None
    if entry["decision"] is None and entry["note"] is None:
        decisions.pop(rid, None)
        return
    decisions[rid] = {**entry, "reviewer": reviewer, "updated": now}


def progress(review: dict[str, Any] | None) -> dict[str, int] | None:
    """How far a review has got: decided rebuttals of the total, and each decision's count."""
    if review is None:
        return None
    counts = {name: 0 for name in DECISIONS}
    for entry in review["decisions"].values():
        if entry.get("decision") in counts:
            counts[entry["decision"]] += 1
    return {"decided": sum(counts.values()), "total": review["rebuttals_total"], **counts}


def listing_progress(run_path: Path) -> dict[str, int] | None:
    """A run's review progress for a listing, read without the schema validator (so `runs` stays
    fast): None when unreviewed or when review.json is damaged (a listing never stops for one bad
    file; `validate` names the problem)."""
    path = run_path / REVIEW_NAME
    if not path.is_file():
        return None
    try:
        review = read_json(path)
    except RunDirError:
        return None
    shaped = isinstance(review, dict) and isinstance(review.get("rebuttals_total"), int)
    decisions = review.get("decisions") if shaped else None
    if not isinstance(decisions, dict) or not all(isinstance(entry, dict) for entry in decisions.values()):
        return None
    return progress(review)
