"""Checking a stored brief (`counterpoint validate`): its schema, its quotes against the article,
its ids, its statuses and its verification checks. Every problem is reported, not just the first.

A brief written before verification checks existed (no `checks` anywhere) is checked as it was
written: the checks' fields are not required of it, and `predates_checks` says so for the report."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import schemas
from ..article import MIN_QUOTE_WORDS, locate, long_enough
from . import verify
from .entries import overall_status


def check_brief(brief: Any, article_text: str | None) -> list[str]:
    """Every problem with a stored brief: the schema, then (on whatever is well-formed, so one
    broken field does not hide the rest) quotes against the article, ids and statuses."""
    old = predates_checks(brief)
    problems = schemas.validate("brief", _as_current(brief) if old else brief)
    if not isinstance(brief, dict):
        return problems
    claims = _items(brief.get("claims"))
    synthesis: dict[str, Any] = brief["synthesis"] if isinstance(brief.get("synthesis"), dict) else {}
    if article_text is not None:
        problems += _check_article(brief, claims, synthesis, article_text)
        if not old:
            problems += _check_verification(claims, article_text)
    problems += _check_ids(claims, synthesis)
    problems += _check_statuses(brief, claims, synthesis)
    return problems


def _checked_items(claims: list[tuple[int, Any]]) -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """(path, item, fields) of every rebuttal and missing-context item of well-formed claims."""
    found: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
    for index, claim in claims:
        if not isinstance(claim, dict):
            continue
        for key, fields in (("rebuttals", verify.REBUTTAL_FIELDS), ("missing_context", verify.MISSING_CONTEXT_FIELDS)):
            found += [
                (f"$.claims[{index}].{key}[{i}]", item, fields)
                for i, item in _items(claim.get(key))
                if isinstance(item, dict)
            ]
    return found


def predates_checks(brief: Any) -> bool:
    """Whether `brief` was written before verification checks: none of its items, nor its run
    section, has them (a brief with some and not others is damaged, and the schema says where)."""
    if not isinstance(brief, dict):
        return False
    run = brief.get("run")
    if isinstance(run, dict) and "checks" in run:
        return False
    return not any("checks" in item for _, item, _ in _checked_items(_items(brief.get("claims"))))


def _as_current(brief: dict[str, Any]) -> dict[str, Any]:
    """An older brief with the fields it could not have (checks, stage models) filled in as empty,
    so the schema checks the rest of it."""
    current = dict(brief)
    if isinstance(brief.get("claims"), list):
        current["claims"] = [_claim_as_current(claim) for claim in brief["claims"]]
    run = brief.get("run")
    if isinstance(run, dict):
        stages = dict.fromkeys(("extract", "rebut", "synthesize"), run.get("model"))
        current["run"] = {"models": stages, **run, "checks": verify.count([])}
    return current


def _claim_as_current(claim: Any) -> Any:
    if not isinstance(claim, dict):
        return claim
    current = dict(claim)
    for key in ("rebuttals", "missing_context"):
        if isinstance(claim.get(key), list):
            current[key] = [{**item, "checks": []} if isinstance(item, dict) else item for item in claim[key]]
    return current


def _check_verification(claims: list[tuple[int, Any]], article_text: str) -> list[str]:
    """Each flagged text is in its item's words and absent from the article; the count adds up."""
    problems = []
    index = verify.ArticleIndex(article_text)
    for where, item, fields in _checked_items(claims):
        texts = verify.item_texts(item, fields)
        for i, check in _items(item.get("checks")):
            text = check.get("text") if isinstance(check, dict) else None
            if not isinstance(text, str) or not text:
                continue
            if not any(text in field for field in texts):
                problems.append(f"{where}.checks[{i}]: {text[:60]!r} is not in the item's text")
            elif index.mentions(text):
                problems.append(f"{where}.checks[{i}]: {text[:60]!r} is in the article, so it needs no check")
    return problems


def _items(value: Any) -> list[tuple[int, Any]]:
    """(index, item) of a list; a non-list is already a schema problem, so it has no items to check."""
    return [(i, item) for i, item in enumerate(value)] if isinstance(value, list) else []


def _check_article(
    brief: dict[str, Any], claims: list[tuple[int, Any]], synthesis: dict[str, Any], article_text: str
) -> list[str]:
    problems = []
    article = brief.get("article")
    recorded = article.get("sha256") if isinstance(article, dict) else None
    if recorded != hashlib.sha256(article_text.encode("utf-8")).hexdigest():
        problems.append(
            "$.article.sha256: does not match the stored article.txt (the offsets may refer to another text)"
        )
    spans = [(f"$.claims[{i}]", c) for i, c in claims if isinstance(c, dict)]
    spans += [(f"$.synthesis.rhetoric[{i}]", r) for i, r in _items(synthesis.get("rhetoric")) if isinstance(r, dict)]
    for where, item in spans:
        quote, start, end = item.get("quote"), item.get("start"), item.get("end")
        if not (isinstance(quote, str) and isinstance(start, int) and isinstance(end, int)):
            continue
        if article_text[start:end] != quote:
            found = locate(article_text, quote)
            detail = "not in the article" if found is None else f"found at {found[0]}-{found[1]}"
            problems.append(f"{where}.quote: does not match the article at {start}-{end} ({detail})")
        elif not long_enough(article_text, start, end):
            problems.append(
                f"{where}.quote: {quote[:40]!r} is too short to ground a claim (at least "
                f"{MIN_QUOTE_WORDS} words or a whole sentence)"
            )
    return problems


def _check_ids(claims: list[tuple[int, Any]], synthesis: dict[str, Any]) -> list[str]:
    problems = []
    claim_ids = [c.get("id") for _, c in claims if isinstance(c, dict)]
    for duplicate in sorted({i for i in claim_ids if isinstance(i, str) and claim_ids.count(i) > 1}):
        problems.append(f"$.claims: duplicate claim id {duplicate}")
    rebuttal_ids: list[str] = []
    for index, claim in claims:
        if not isinstance(claim, dict):
            continue
        for r_index, rebuttal in _items(claim.get("rebuttals")):
            rebuttal_id = rebuttal.get("id") if isinstance(rebuttal, dict) else None
            if not isinstance(rebuttal_id, str):
                continue
            if not rebuttal_id.startswith(f"{claim.get('id')}-"):
                problems.append(
                    f"$.claims[{index}].rebuttals[{r_index}].id: {rebuttal_id} does not belong to {claim.get('id')}"
                )
            if rebuttal_id in rebuttal_ids:
                problems.append(f"$.claims[{index}].rebuttals[{r_index}].id: duplicate rebuttal id {rebuttal_id}")
            rebuttal_ids.append(rebuttal_id)
    strongest: list[str] = []
    for index, rebuttal_id in _items(synthesis.get("strongest_rebuttals")):
        if isinstance(rebuttal_id, str) and rebuttal_id in strongest:
            problems.append(f"$.synthesis.strongest_rebuttals[{index}]: duplicate rebuttal id {rebuttal_id}")
        elif isinstance(rebuttal_id, str) and rebuttal_id not in rebuttal_ids:
            problems.append(f"$.synthesis.strongest_rebuttals[{index}]: unknown rebuttal id {rebuttal_id}")
        strongest.append(rebuttal_id)
    return problems


def _check_statuses(brief: dict[str, Any], claims: list[tuple[int, Any]], synthesis: dict[str, Any]) -> list[str]:
    """An analysed claim has its analysis, a failed one its reason, and the brief's status adds up."""
    problems = []
    for index, claim in claims:
        if not isinstance(claim, dict):
            continue
        if claim.get("status") == "ok" and (claim.get("steelman") is None or not claim.get("rebuttals")):
            problems.append(f"$.claims[{index}]: status ok but no steelman or rebuttals")
        if claim.get("status") in ("failed", "refused") and claim.get("error") is None:
            problems.append(f"$.claims[{index}]: status {claim['status']} but no error saying why")
    if synthesis.get("status") in ("failed", "refused") and synthesis.get("error") is None:
        problems.append(f"$.synthesis: status {synthesis['status']} but no error saying why")
    if all(isinstance(c, dict) and "status" in c for _, c in claims) and "status" in synthesis:
        expected = overall_status(brief.get("thesis"), [c for _, c in claims], synthesis)
        if brief.get("status") != expected:
            problems.append(f"$.status: {brief.get('status')!r}, but its claims and synthesis make it {expected!r}")
    return problems
