"""Render a brief as one self-contained HTML page from templates/brief.html.j2.

Article and model text never become markup: autoescaping is on, nothing is marked safe, and the
highlighted article reaches the template as tokens (text, open mark, close mark) per paragraph, so
the template writes every tag and every character of text goes through the escaper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from ..pricing import format_cost
from ..resources import resource_dir
from ..version import __version__
from .entries import STATUS_LABELS, checks_summary, review_line, status_label, strongest_rebuttals

TEMPLATE = "brief.html.j2"
FIRST_CHECKS = 5  # leads in the summary's "first things to check"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_WEB_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)  # anything else stays text
_LANG_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class Highlight:
    """A quoted span of the article: a claim's quote or a rhetoric note's."""

    kind: str  # "claim" or "rhetoric"
    label: str  # shown on the mark: "C1", "Rh1"
    start: int
    end: int
    anchor: str  # id of the mark, which the card links back to
    target: str  # id of the card or note the mark links to
    status: str  # the claim's status ("ok", "failed", "refused"); "ok" for rhetoric


@dataclass(frozen=True)
class Token:
    kind: str  # "text", "open" or "close"
    text: str = ""
    mark: Highlight | None = None
    first: bool = False  # the first piece of a mark carries its id and label


def paragraph_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of each paragraph: runs of text between blank lines."""
    bounds, start = [], 0
    for gap in _PARAGRAPH_BREAK.finditer(text):
        bounds.append((start, gap.start()))
        start = gap.end()
    bounds.append((start, len(text)))
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def article_paragraphs(text: str, highlights: list[Highlight]) -> list[list[Token]]:
    """The article as paragraphs of tokens with every highlight as a well-nested <mark>.

    Overlapping quotes cannot nest as written, so a mark that must close while an inner one is
    still open is closed and reopened around it; a quote running across a paragraph break is
    closed at the end of one paragraph and reopened in the next. Only a mark's first piece gets
    its id and label, so ids stay unique. Spans outside the text are ignored.
    """
    pending = sorted((h for h in highlights if 0 <= h.start < h.end <= len(text)), key=lambda h: (h.start, -h.end))
    stack: list[Highlight] = []  # open marks, outermost first
    paragraphs: list[list[Token]] = []
    for p_start, p_end in paragraph_bounds(text):
        tokens = [Token("open", mark=h) for h in stack]
        points = sorted(
            {p_start, p_end}
            | {h.start for h in pending if p_start < h.start < p_end}
            | {h.end for h in pending + stack if p_start < h.end < p_end}
        )
        position = p_start
        for point in points:
            if point > position:
                tokens.append(Token("text", text[position:point]))
                position = point
            ending = [index for index, h in enumerate(stack) if h.end <= point]
            if ending:
                inner = stack[ending[0] :]
                tokens += [Token("close") for _ in inner]
                del stack[ending[0] :]
                for h in inner:
                    if h.end > point:
                        tokens.append(Token("open", mark=h))
                        stack.append(h)
            while pending and pending[0].start <= point < p_end:
                h = pending.pop(0)
                if h.end > point:
                    tokens.append(Token("open", mark=h, first=True))
                    stack.append(h)
        tokens += [Token("close") for _ in stack]
        paragraphs.append(tokens)
    return paragraphs


def _highlights(brief: dict[str, Any], text: str) -> list[Highlight]:
    """Claim and rhetoric quotes whose recorded offsets really hold the quote (a tampered or
    stale brief must not highlight the wrong words)."""
    marks = []
    for claim in brief["claims"]:
        if text[claim["start"] : claim["end"]] == claim["quote"]:
            marks.append(
                Highlight(
                    "claim",
                    claim["id"],
                    claim["start"],
                    claim["end"],
                    f"quote-{claim['id']}",
                    f"claim-{claim['id']}",
                    claim["status"],
                )
            )
    for number, item in enumerate(brief["synthesis"]["rhetoric"], start=1):
        if text[item["start"] : item["end"]] == item["quote"]:
            marks.append(
                Highlight(
                    "rhetoric",
                    f"Rh{number}",
                    item["start"],
                    item["end"],
                    f"quote-rh{number}",
                    f"rhetoric-{number}",
                    "ok",
                )
            )
    return marks


def marked(text: str, checks: list[dict[str, str]] | None) -> list[tuple[str, dict[str, str] | None]]:
    """`text` cut into pieces, each with the check whose words it is (None between them): every
    occurrence of a flagged text is marked, the longer text first where two overlap."""
    taken: list[tuple[int, int, dict[str, str]]] = []
    for check in sorted(checks or [], key=lambda c: -len(c["text"])):
        at = text.find(check["text"]) if check["text"] else -1
        while at != -1:
            end = at + len(check["text"])
            if not any(at < other_end and other_start < end for other_start, other_end, _ in taken):
                taken.append((at, end, check))
            at = text.find(check["text"], end)
    pieces: list[tuple[str, dict[str, str] | None]] = []
    position = 0
    for start, end, check in sorted(taken, key=lambda t: t[0]):
        pieces += [(text[position:start], None)] if start > position else []
        pieces.append((text[start:end], check))
        position = end
    return pieces + ([(text[position:], None)] if position < len(text) else [])


def first_checks(strongest: list[dict[str, Any]], claims: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What to check first: the first lead of each strongest rebuttal, then of the strongest
    rebuttal of each check-worthy claim (most central first), without repeats, at most FIRST_CHECKS."""
    picks = [item["rebuttal"] for item in strongest if item["rebuttal"]]
    worthy = sorted((c for c in claims if c["check_worthy"] and c["rebuttals"]), key=lambda c: -c["centrality"])
    picks += [claim["rebuttals"][0] for claim in worthy]  # claims' rebuttals are sorted strongest first
    leads: list[dict[str, str]] = []
    for rebuttal in picks:
        lead = next(iter(rebuttal["what_to_check"]), None)
        if lead and all(lead != seen["lead"] for seen in leads):
            leads.append({"id": rebuttal["id"], "lead": lead})
    return leads[:FIRST_CHECKS]


def page_context(brief: dict[str, Any], article_text: str) -> dict[str, Any]:
    """What the template needs, prepared so that it only has to lay things out."""
    highlights = _highlights(brief, article_text)
    highlighted = {mark.anchor for mark in highlights}
    claims = [
        {
            **claim,
            "status_label": status_label(claim),
            "highlighted": f"quote-{claim['id']}" in highlighted,
            "rebuttals": sorted(claim["rebuttals"], key=lambda r: -r["strength"]),
        }
        for claim in brief["claims"]
    ]
    strongest = strongest_rebuttals(brief)
    strongest_ids = {item["id"] for item in strongest if item["rebuttal"]}
    for claim in claims:
        claim["has_strongest"] = any(r["id"] in strongest_ids for r in claim["rebuttals"])
    rhetoric = [
        {**item, "number": n, "highlighted": f"quote-rh{n}" in highlighted}
        for n, item in enumerate(brief["synthesis"]["rhetoric"], start=1)
    ]
    article = brief["article"]
    url = article["url"]
    language = article["language"]
    return {
        "brief": brief,
        "article": article,
        "article_href": url if url and _WEB_URL.match(url) else None,
        "lang": language if language and _LANG_TAG.match(language) else None,
        "paragraphs": article_paragraphs(article_text, highlights),
        "claims": claims,
        "strongest": strongest,
        "strongest_ids": strongest_ids,
        "first_checks": first_checks(strongest, claims),
        "rhetoric": rhetoric,
        "counts": {label: sum(1 for c in claims if c["status_label"] == label) for label in STATUS_LABELS},
        "synthesis_label": status_label(brief["synthesis"]),
        "cost": format_cost(brief["run"]["cost_usd"]),
        "cost_noted": format_cost(brief["run"]["cost_usd"], brief["run"]["model"]),
        "verify_summary": checks_summary(brief["run"].get("checks")),
        "marked": marked,
        "version": __version__,
        "review_line": review_line(brief["review"]) if brief.get("review") else None,
    }


@lru_cache(maxsize=4)
def template(name: str = TEMPLATE) -> Template:
    """The compiled page template (~0.1 s to compile, so a run does it while the model works)."""
    environment = Environment(
        loader=FileSystemLoader(resource_dir("templates")),
        autoescape=True,  # every {{ }} is escaped; the template never uses |safe
        undefined=StrictUndefined,  # a missing field is a bug to see, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(name)


def render_html(
    brief: dict[str, Any], article_text: str, *, name: str = TEMPLATE, extra: dict[str, Any] | None = None
) -> str:
    """The brief as one HTML page: inline CSS, no scripts, no external requests. `name` is a template
    that extends brief.html.j2 (the reviewed export, the review page) and `extra` what it adds."""
    return template(name).render(**page_context(brief, article_text), **(extra or {}))
