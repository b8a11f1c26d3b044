"""The brief as Markdown (brief.md): claim → quote → steelman → rebuttals by strength → missing context."""

from __future__ import annotations

from typing import Any

from ..pricing import format_cost
from .entries import check_words, checks_summary, review_line, status_label, strongest_rebuttals


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
    verify = checks_summary(run.get("checks"))
    if verify:
        meta.append(f"**Verify before use:** {verify}: specifics the article does not state")
    out += ["  \n".join(meta), ""]
    if brief.get("review"):
        out += [f"_{review_line(brief['review'])}_", ""]
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
    out += [
        "---",
        "",
        f"_{usage['calls']} model calls ({usage['cache_hits']} from cache), "
        f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens, "
        f"estimated cost {format_cost(run['cost_usd'])}._",
        "",
    ]
    return "\n".join(out)


def _render_claim_md(claim: dict[str, Any]) -> list[str]:
    flags = f"{claim['type']}, centrality {claim['centrality']}/5" + (", check-worthy" if claim["check_worthy"] else "")
    out = [f"### {claim['id']}. {claim['text']}", "", f"_{flags}_", "", _md_quote(claim["quote"]), ""]
    if claim["status"] != "ok":
        error = claim["error"] or {"kind": claim["status"], "message": ""}
        return [*out, f"**{status_label(claim).upper()}** ({error['kind']}): {error['message']}", ""]
    if claim.get("review_note"):
        out += [f"**Reviewer's note.** {claim['review_note']}", ""]
    out += [f"**Steelman.** {claim['steelman']}", "", "**Rebuttals** (strongest first)", ""]
    if not claim["rebuttals"] and "review_note" in claim:  # all left out in review
        out += ["_No rebuttal was kept in review._", ""]
    for rebuttal in sorted(claim["rebuttals"], key=lambda r: -r["strength"]):
        out.append(
            f"- **{rebuttal['id']}** [{rebuttal['type']}, strength {rebuttal['strength']}/5] {rebuttal['argument']}"
        )
        out += [f"  - What to check: {lead}" for lead in rebuttal["what_to_check"]]
        out += _verify_md(rebuttal, "  ")
        if rebuttal.get("original_argument"):
            out.append(f"  - Edited by the reviewer; the model wrote: {rebuttal['original_argument']}")
        if rebuttal.get("review_note"):
            out.append(f"  - Reviewer's note: {rebuttal['review_note']}")
    out.append("")
    if claim["missing_context"]:
        out += ["**Missing context**", ""]
        for item in claim["missing_context"]:
            out += [f"- {item['point']} _Why it matters:_ {item['why_it_matters']}", *_verify_md(item, "  ")]
        out.append("")
    return out


def _verify_md(item: dict[str, Any], indent: str) -> list[str]:
    """The "verify before use" line under an item: its specifics the article does not state."""
    words = check_words(item)
    return [f"{indent}- Verify before use (not in the article): {words}"] if words else []


def _render_synthesis_md(synthesis: dict[str, Any], claims: list[dict[str, Any]]) -> list[str]:
    out = ["## Synthesis", ""]
    if synthesis["status"] != "ok":
        error = synthesis["error"]
        reason = f" ({error['kind']}): {error['message']}" if error else ": no claim could be analysed"
        return [*out, f"**{status_label(synthesis).upper()}**{reason}", ""]
    strongest = [item for item in strongest_rebuttals({"claims": claims, "synthesis": synthesis}) if item["rebuttal"]]
    if strongest:
        out += ["**Strongest rebuttals** (strongest first)", ""]
        out += [f"1. **{item['id']}** {item['rebuttal']['argument']}" for item in strongest]
        out.append("")
    if synthesis["rhetoric"]:
        out += ["**Rhetoric**", ""]
        out += [f'- _{r["device"]}_: "{r["quote"]}" {r["note"]}' for r in synthesis["rhetoric"]]
        out.append("")
    for title, items in (("Open questions", synthesis["open_questions"]), ("Caveats", synthesis["caveats"])):
        if items:
            out += [f"**{title}**", ""] + [f"- {item}" for item in items] + [""]
    return out
