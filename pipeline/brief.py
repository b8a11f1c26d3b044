"""Assemble the Brief, validate it against schemas/brief.schema.json, and render it for people."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import schemas
from .errors import UnitFailed

_EMPTY_SYNTHESIS: dict[str, Any] = {"counter_thesis": None, "strongest_rebuttals": [], "rhetoric": [],
                    "open_questions": [], "caveats": []}


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


def status_label(claim: dict[str, Any]) -> str:
    """A claim's outcome for people: ok, refused, failed, or (when a stopped run never reached it)
    skipped or interrupted."""
    kind = (claim["error"] or {}).get("kind")
    return kind if claim["status"] != "ok" and kind in ("skipped", "interrupted") else claim["status"]


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


def assemble(*, article: dict[str, Any], thesis: str | None, claims: list[dict[str, Any]],
             synthesis: dict[str, Any], notes: list[str], run: dict[str, Any]) -> dict[str, Any]:
    """The brief as a dict, validated against its schema (a failure here is a bug, not bad input)."""
    brief = {
        "schema_version": 1,
        "status": overall_status(thesis, claims, synthesis),
        "article": article,
        "thesis": thesis,
        "claims": claims,
        "synthesis": synthesis,
        "notes": notes,
        "run": run,
    }
    problems = schemas.validate("brief", brief)
    if problems:
        raise ValueError("assembled brief breaks schemas/brief.schema.json: " + "; ".join(problems[:5]))
    return brief


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


def _check_article(brief: dict[str, Any], claims: list[tuple[int, Any]], synthesis: dict[str, Any],
                   article_text: str) -> list[str]:
    from .article import MIN_QUOTE_WORDS, locate, long_enough

    problems = []
    article = brief.get("article")
    recorded = article.get("sha256") if isinstance(article, dict) else None
    if recorded != hashlib.sha256(article_text.encode("utf-8")).hexdigest():
        problems.append("$.article.sha256: does not match the stored article.txt (the offsets may refer to "
                        "another text)")
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
            problems.append(f"{where}.quote: {quote[:40]!r} is too short to ground a claim (at least "
                            f"{MIN_QUOTE_WORDS} words or a whole sentence)")
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
                problems.append(f"$.claims[{index}].rebuttals[{r_index}].id: {rebuttal_id} does not belong to "
                                f"{claim.get('id')}")
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


def _check_statuses(brief: dict[str, Any], claims: list[tuple[int, Any]],
                    synthesis: dict[str, Any]) -> list[str]:
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


# -- Markdown ---------------------------------------------------------------------------------

def _md_quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def render_markdown(brief: dict[str, Any]) -> str:
    """Editor-readable: claim → quote → steelman → rebuttals by strength → missing context."""
    article, run, synthesis = brief["article"], brief["run"], brief["synthesis"]
    out = [f"# Counterpoint brief: {article['title'] or 'untitled article'}", ""]
    meta = [f"**Status:** {brief['status']}"]
    for label, key in (("Author", "author"), ("Date", "date"), ("Site", "site"), ("URL", "url")):
        if article[key]:
            meta.append(f"**{label}:** {article[key]}")
    meta.append(f"**Model:** {run['model']} ({run['endpoint_host']})")
    meta.append(f"**Run:** {run['id'] or 'not saved'}, {run['created']}")
    out += ["  \n".join(meta), ""]
    if brief["notes"]:
        out += ["## Notes", ""] + [f"- {note}" for note in brief["notes"]] + [""]
    out += ["## Thesis", "", brief["thesis"] or "_Claim extraction failed; no thesis._", ""]
    if synthesis["counter_thesis"]:
        out += ["## Counter-thesis", "", synthesis["counter_thesis"], ""]
    out += ["## Claims", ""]
    for claim in brief["claims"]:
        out += _render_claim_md(claim)
    out += _render_synthesis_md(synthesis, brief["claims"])
    usage = run["usage"]
    cost = f"${run['cost_usd']:.4f}" if run["cost_usd"] is not None else "unpriced"
    out += ["---", "",
            f"_{usage['calls']} model calls ({usage['cache_hits']} from cache), "
            f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens, "
            f"estimated cost {cost}._", ""]
    return "\n".join(out)


def _render_claim_md(claim: dict[str, Any]) -> list[str]:
    flags = f"{claim['type']}, centrality {claim['centrality']}/5" + (", check-worthy" if claim["check_worthy"] else "")
    out = [f"### {claim['id']}. {claim['text']}", "", f"_{flags}_", "", _md_quote(claim["quote"]), ""]
    if claim["status"] != "ok":
        error = claim["error"] or {"kind": claim["status"], "message": ""}
        label = "REFUSED" if claim["status"] == "refused" else "FAILED"
        return [*out, f"**{label}** ({error['kind']}): {error['message']}", ""]
    out += [f"**Steelman.** {claim['steelman']}", "", "**Rebuttals** (strongest first)", ""]
    for rebuttal in sorted(claim["rebuttals"], key=lambda r: -r["strength"]):
        out.append(f"- **{rebuttal['id']}** [{rebuttal['type']}, strength {rebuttal['strength']}/5] "
                   f"{rebuttal['argument']}")
        out += [f"  - What to check: {lead}" for lead in rebuttal["what_to_check"]]
    out.append("")
    if claim["missing_context"]:
        out += ["**Missing context**", ""]
        out += [f"- {item['point']} _Why it matters:_ {item['why_it_matters']}" for item in claim["missing_context"]]
        out.append("")
    return out


def _render_synthesis_md(synthesis: dict[str, Any], claims: list[dict[str, Any]]) -> list[str]:
    out = ["## Synthesis", ""]
    if synthesis["status"] != "ok":
        error = synthesis["error"]
        reason = f" ({error['kind']}): {error['message']}" if error else ": no claim could be analysed"
        return [*out, f"**{synthesis['status'].upper()}**{reason}", ""]
    by_id = {r["id"]: r for c in claims for r in c["rebuttals"]}
    if synthesis["strongest_rebuttals"]:
        out += ["**Strongest rebuttals**", ""]
        out += [f"1. **{rid}** {by_id[rid]['argument']}" for rid in synthesis["strongest_rebuttals"] if rid in by_id]
        out.append("")
    if synthesis["rhetoric"]:
        out += ["**Rhetoric**", ""]
        out += [f"- _{r['device']}_: \"{r['quote']}\" {r['note']}" for r in synthesis["rhetoric"]]
        out.append("")
    for title, items in (("Open questions", synthesis["open_questions"]), ("Caveats", synthesis["caveats"])):
        if items:
            out += [f"**{title}**", ""] + [f"- {item}" for item in items] + [""]
    return out


@dataclass(frozen=True)
class Brief:
    """A finished brief: the validated dict, where it was written (if it was), and the article
    text its quote offsets refer to (the HTML page highlights the quotes in it)."""

    data: dict[str, Any]
    run_dir: Path | None = None
    article_text: str | None = None

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def claims(self) -> list[dict[str, Any]]:
        return self.data["claims"]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        return render_markdown(self.data)

    def to_html(self) -> str:
        """One self-contained page: the article with its quotes highlighted, the cards, the synthesis."""
        from .brief_html import render_html  # jinja2 is only loaded when a page is wanted

        if self.article_text is None:
            raise ValueError("this Brief has no article_text; the HTML page highlights quotes in it")
        return render_html(self.data, self.article_text)
