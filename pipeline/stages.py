"""The three stages: inputs → prompt variables → validated data plus semantic checks.

Every per-claim request starts with the same two messages (system prompt, fenced article)
so that providers can reuse the cached prefix; the claim-specific part comes last.
"""

from __future__ import annotations

import re
from datetime import date
from functools import partial
from typing import Any

from . import article as article_mod
from . import prompts
from .article import Article
from .llm import CallContext, Message, ModelClient, structured

# max_tokens per stage: room for the schema's bounded fields, not for a runaway loop.
MAX_TOKENS = {"extract": 3000, "rebut": 2000, "synthesize": 2500}
_FENCE_MARKER = re.compile(r"<<<|>>>")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)


def fence_safe(text: str) -> str:
    """Neutralise anything in the article that could pass for a fence marker."""
    return _FENCE_MARKER.sub(lambda m: "‹‹‹" if m.group(0) == "<<<" else "›››", text)


def base_messages(article: Article, nonce: str, language: str | None) -> list[Message]:
    """The shared prefix of every request: system rules, then the article as fenced data."""
    language_rule = f"in {language}" if language else "in the same language as the article"
    return [
        {"role": "system", "content": prompts.render("system", nonce=nonce, language=language_rule)},
        {
            "role": "user",
            "content": prompts.render(
                "article",
                nonce=nonce,
                article=fence_safe(article.text),
                title=article.title or "unknown",
                author=article.author or "unknown",
                date=article.date or "unknown",
            ),
        },
    ]


# -- stage 1 ----------------------------------------------------------------------------------


def check_claims(data: dict[str, Any], article: Article, max_claims: int) -> list[str]:
    """Semantic checks on stage 1, on the claims `select_claims` keeps: quote grounding, unique ids."""
    errors: list[str] = []
    claims = data["claims"]
    seen_ids: set[str] = set()
    for index in _selected(claims, max_claims):
        claim, where = claims[index], f"$.claims[{index}]"
        if claim["id"] in seen_ids:
            errors.append(f"{where}.id: duplicate id {claim['id']}")
        seen_ids.add(claim["id"])
        problem = article_mod.grounding_problem(article.text, claim["quote"])
        if problem:
            errors.append(f"{where}.quote: {problem}: {claim['quote'][:120]!r}")
    return errors


def select_claims(data: dict[str, Any], max_claims: int) -> tuple[dict[str, Any], list[str]]:
    """The claims a brief analyses, in the model's order, and a note for each kind left out: a claim
    that repeats an earlier one (a looping model's habit: asking again rarely cures it), then any
    beyond `max_claims`, the least central first."""
    claims = data["claims"]
    distinct = _distinct(claims)
    selected = _selected(claims, max_claims)
    notes = []
    if len(distinct) < len(claims):
        notes.append(f"The model stated {len(claims) - len(distinct)} claim(s) twice; each was analysed once.")
    if len(selected) < len(distinct):
        notes.append(
            f"The model returned {len(distinct)} claims; the {max_claims} most central were kept "
            f"(--max-claims {max_claims})."
        )
    return ({**data, "claims": [claims[index] for index in selected]} if notes else data), notes


def _distinct(claims: list[dict[str, Any]]) -> list[int]:
    """Indexes of the claims whose text no earlier claim already states."""
    seen: set[str] = set()
    distinct = []
    for index, claim in enumerate(claims):
        key = _normal(claim["text"])
        if key not in seen:
            seen.add(key)
            distinct.append(index)
    return distinct


def _selected(claims: list[dict[str, Any]], max_claims: int) -> list[int]:
    """Indexes of the `max_claims` most central distinct claims (ties: the model's order), in the model's order."""
    ranked = sorted(_distinct(claims), key=lambda index: -claims[index]["centrality"])  # stable: keeps ties in order
    return sorted(ranked[:max_claims])


async def extract_claims(
    client: ModelClient,
    base: list[Message],
    article: Article,
    nonce: str,
    *,
    max_claims: int,
    reasks: int,
    model: str | None = None,
) -> dict[str, Any]:
    """Thesis and claims, validated; `ground_claims` then attaches the article's spans."""
    task = prompts.render("extract_claims", max_claims=max_claims)
    return await structured(
        client,
        CallContext("extract", "extract", nonce, model),
        [*base, {"role": "user", "content": task}],
        "claims",
        partial(check_claims, article=article, max_claims=max_claims),
        max_tokens=MAX_TOKENS["extract"],
        reasks=reasks,
        choices={"claims[].quote": article_mod.sentences(article.text)},
    )


def ground(article: Article, item: dict[str, Any]) -> dict[str, Any]:
    """Replace a checked model quote with the article's own span and record its offsets."""
    span = article_mod.locate(article.text, item["quote"])
    if span is None:  # the semantic check ran first, so this is a bug, not bad model output
        raise ValueError(f"quote passed its check but cannot be located: {item['quote'][:80]!r}")
    start, end = span
    return {**item, "quote": article.text[start:end], "start": start, "end": end}


def ground_claims(article: Article, data: dict[str, Any]) -> dict[str, Any]:
    return {"thesis": data["thesis"], "claims": [ground(article, claim) for claim in data["claims"]]}


# -- stage 2 ----------------------------------------------------------------------------------


def check_rebuttal(data: dict[str, Any]) -> list[str]:
    """The prompt forbids invented links; a URL in a lead is a made-up citation."""
    errors = []
    for index, rebuttal in enumerate(data["rebuttals"]):
        for lead_index, lead in enumerate(rebuttal["what_to_check"]):
            if _URL.search(lead):
                errors.append(
                    f"$.rebuttals[{index}].what_to_check[{lead_index}]: no URLs; name what to look up instead"
                )
    return errors


async def rebut_claim(
    client: ModelClient,
    base: list[Message],
    claim: dict[str, Any],
    nonce: str,
    *,
    reasks: int,
    model: str | None = None,
) -> dict[str, Any]:
    """Steelman, rebuttals and missing context for one claim; `number_rebuttals` gives ids.

    prompts/rebut_claim.md names the claim at its very end, so every claim's request shares all
    that comes before it (system, article, task) and a provider can serve that prefix from cache.
    """
    task = prompts.render(
        "rebut_claim",
        claim_id=claim["id"],
        claim_type=claim["type"],
        centrality=claim["centrality"],
        claim_text=claim["text"],
        claim_quote=claim["quote"],
    )
    return await structured(
        client,
        CallContext("rebut", claim["id"], nonce, model),
        [*base, {"role": "user", "content": task}],
        "rebuttal",
        check_rebuttal,
        max_tokens=MAX_TOKENS["rebut"],
        reasks=reasks,
    )


def number_rebuttals(claim_id: str, data: dict[str, Any]) -> dict[str, Any]:
    rebuttals = [{"id": f"{claim_id}-R{n}", **r} for n, r in enumerate(data["rebuttals"], start=1)]
    return {**data, "rebuttals": rebuttals}


# -- stage 3 ----------------------------------------------------------------------------------


def claims_outline(claims: list[dict[str, Any]]) -> str:
    """The analysed claims and their rebuttals as text, as the synthesis prompt lists them (its
    placeholder is still called `claims_digest`: renaming it would change the prompt's hash, and
    recorded runs could no longer resume without --force)."""
    lines = []
    for claim in claims:
        if claim["status"] != "ok":
            continue
        lines.append(f"[{claim['id']}] {claim['text']}")
        for rebuttal in claim["rebuttals"]:
            lines.append(
                f"  [{rebuttal['id']}] ({rebuttal['type']}, strength {rebuttal['strength']}/5) {rebuttal['argument']}"
            )
    return "\n".join(lines)


def check_synthesis(data: dict[str, Any], article: Article, rebuttal_ids: set[str]) -> list[str]:
    """Semantic checks on stage 3: strongest rebuttals are listed ids, each once; rhetoric quotes ground."""
    errors = []
    seen: set[str] = set()
    for index, rebuttal_id in enumerate(data["strongest_rebuttals"]):
        if rebuttal_id in seen:
            errors.append(f"$.strongest_rebuttals[{index}]: {rebuttal_id} is listed twice; list each once")
        elif rebuttal_id not in rebuttal_ids:
            errors.append(f"$.strongest_rebuttals[{index}]: {rebuttal_id} is not one of the listed rebuttal ids")
        seen.add(rebuttal_id)
    for index, item in enumerate(data["rhetoric"]):
        problem = article_mod.grounding_problem(article.text, item["quote"])
        if problem:
            errors.append(f"$.rhetoric[{index}].quote: {problem}: {item['quote'][:120]!r}")
    return errors


async def synthesize(
    client: ModelClient,
    base: list[Message],
    article: Article,
    nonce: str,
    *,
    thesis: str,
    claims: list[dict[str, Any]],
    reasks: int,
    today: date | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The counter-case over every analysed claim; `ground_rhetoric` attaches quote spans."""
    failed = [c["id"] for c in claims if c["status"] != "ok"]
    task = prompts.render(
        "synthesize",
        thesis=thesis,
        claims_digest=claims_outline(claims),
        date=article.date or "not stated in the article",
        today=(today or date.today()).isoformat(),
        failed_claims=", ".join(failed) if failed else "none",
    )
    rebuttal_ids = {r["id"] for c in claims if c["status"] == "ok" for r in c["rebuttals"]}
    return await structured(
        client,
        CallContext("synthesize", "synthesize", nonce, model),
        [*base, {"role": "user", "content": task}],
        "synthesis",
        partial(check_synthesis, article=article, rebuttal_ids=rebuttal_ids),
        max_tokens=MAX_TOKENS["synthesize"],
        reasks=reasks,
        choices={
            "rhetoric[].quote": article_mod.sentences(article.text),
            "strongest_rebuttals[]": sorted(rebuttal_ids),
        },
    )


def ground_rhetoric(article: Article, data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "rhetoric": [ground(article, item) for item in data["rhetoric"]]}


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())
