"""Checking a stored brief (`counterpoint validate`): its schema, its quotes against the article,
its ids and its statuses. Every problem is reported, not just the first."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import schemas
from ..article import MIN_QUOTE_WORDS, locate, long_enough
from .entries import overall_status


def check_brief(brief: Any, article_text: str | None) -> list[str]:
    """Every problem with a stored brief: the schema, then (on whatever is well-formed, so one
    broken field does not hide the rest) quotes against the article, ids and statuses."""
    problems = schemas.validate("brief", brief)
    if not isinstance(brief, dict):
        return problems
    claims = _items(brief.get("claims"))
    synthesis: dict[str, Any] = brief["synthesis"] if isinstance(brief.get("synthesis"), dict) else {}
    if article_text is not None:
        problems += _check_article(brief, claims, synthesis, article_text)
    problems += _check_ids(claims, synthesis)
    problems += _check_statuses(brief, claims, synthesis)
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
