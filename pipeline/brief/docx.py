"""The brief as a Word document (`counterpoint export --format docx`), through python-docx:
claim → quote → steelman → rebuttals by strength → missing context, then the synthesis; a reviewed
brief adds the reviewer's line, edits and notes."""

from __future__ import annotations

import io
from typing import Any

from .entries import review_line, status_label, strongest_rebuttals


def render_docx(brief: dict[str, Any]) -> bytes:
    """The .docx file's bytes (python-docx is imported here: only an export needs it)."""
    from docx import Document

    document = Document()
    article, synthesis = brief["article"], brief["synthesis"]
    document.add_heading(f"Counterpoint brief: {article['title'] or 'untitled article'}", level=0)
    byline = " · ".join(article[key] for key in ("author", "date", "site", "url") if article[key])
    if byline:
        document.add_paragraph(byline)
    document.add_paragraph(f"Status: {brief['status']}. Model: {brief['run']['model']}. Run: {brief['run']['id']}.")
    if brief.get("review"):
        document.add_paragraph(review_line(brief["review"])).runs[0].italic = True
    for title, text in (("Thesis", brief["thesis"]), ("Counter-thesis", synthesis["counter_thesis"])):
        if text:
            document.add_heading(title, level=1)
            document.add_paragraph(text)
    document.add_heading("Claims", level=1)
    for claim in brief["claims"]:
        _claim(document, claim)
    _synthesis(document, brief)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _claim(document: Any, claim: dict[str, Any]) -> None:
    document.add_heading(f"{claim['id']}. {claim['text']}", level=2)
    worthy = ", check-worthy" if claim["check_worthy"] else ""
    document.add_paragraph(f"{claim['type']}, centrality {claim['centrality']}/5{worthy}").runs[0].italic = True
    document.add_paragraph(claim["quote"], style="Intense Quote")
    if claim.get("review_note"):
        document.add_paragraph(f"Reviewer's note: {claim['review_note']}")
    if claim["status"] != "ok":
        error = claim["error"] or {"kind": claim["status"], "message": ""}
        document.add_paragraph(f"{status_label(claim).upper()} ({error['kind']}): {error['message']}")
        return
    document.add_paragraph(f"Steelman. {claim['steelman']}")
    for rebuttal in sorted(claim["rebuttals"], key=lambda r: -r["strength"]):
        line = f"{rebuttal['id']} [{rebuttal['type']}, strength {rebuttal['strength']}/5] {rebuttal['argument']}"
        document.add_paragraph(line, style="List Bullet")
        extras = [f"What to check: {lead}" for lead in rebuttal["what_to_check"]]
        if rebuttal.get("original_argument"):
            extras.append(f"Edited by the reviewer; the model wrote: {rebuttal['original_argument']}")
        if rebuttal.get("review_note"):
            extras.append(f"Reviewer's note: {rebuttal['review_note']}")
        for extra in extras:
            document.add_paragraph(extra, style="List Bullet 2")
    for item in claim["missing_context"]:
        document.add_paragraph(f"Missing context: {item['point']} Why it matters: {item['why_it_matters']}")


def _synthesis(document: Any, brief: dict[str, Any]) -> None:
    synthesis = brief["synthesis"]
    document.add_heading("Synthesis", level=1)
    if synthesis["status"] != "ok":
        error = synthesis["error"]
        reason = f" ({error['kind']}): {error['message']}" if error else ": no claim could be analysed"
        document.add_paragraph(f"{status_label(synthesis).upper()}{reason}")
        return
    strongest = [item for item in strongest_rebuttals(brief) if item["rebuttal"]]
    sections = (
        ("Strongest rebuttals, strongest first", [f"{i['id']} {i['rebuttal']['argument']}" for i in strongest]),
        ("Rhetoric", [f"{r['device']}: “{r['quote']}” {r['note']}" for r in synthesis["rhetoric"]]),
        ("Open questions", synthesis["open_questions"]),
        ("Caveats", synthesis["caveats"]),
    )
    for title, items in sections:
        if items:
            document.add_heading(title, level=2)
            for item in items:
                document.add_paragraph(item, style="List Bullet")
