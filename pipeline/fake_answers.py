"""Answers a fake model gives when a test scripts nothing: read off the request, valid by construction.

`default_answer(body)` returns, for the unit a chat-completions request is for, an answer that
passes the stage's schema and its semantic checks: quotes copied from the article fenced in the
request (or from the allowed values a narrowed schema lists), claim ids C1…Cn, and in the synthesis
only rebuttal ids the request lists. `fault(kind, answer)` describes how each failure kind a test can
script looks on the wire. Used by `pipeline.testing`; not needed at runtime.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from . import article as article_mod

FAULT_KINDS = (
    "refusal",
    "timeout",
    "http_429",
    "http_500",
    "http_401",
    "invalid",
    "malformed",
    "length",
    "ungrounded",
    "empty",
)
TRANSPORT_KINDS = frozenset({"timeout", "http_429", "http_500", "http_401"})
DEFAULT_CLAIMS = 3  # enough for a brief with a strongest rebuttal per claim, few enough to read
UNGROUNDED_QUOTE = "These words were never written by the author of the article at all."
MADE_UP_LEAD = "The study at https://example.org/made-up-study"

_CLAIM_ID = re.compile(r"^Claim (C\d+) \(", re.MULTILINE)
_ARTICLE = re.compile(r"<<<ARTICLE (\S+)>>>\n(?P<text>.*?)\n<<<END ARTICLE \1>>>", re.DOTALL)
_CLAIM = re.compile(r"^Claim (?P<id>C\d+) \((?P<type>\w+), centrality (?P<centrality>\d)/5\): (?P<text>.*)$", re.M)
_LISTED_REBUTTAL = re.compile(r"^\s+\[(?P<id>C\d+-R\d+)\] \([\w-]+, strength (?P<strength>\d)/5\)", re.MULTILINE)
_CLAIM_TYPES = ("factual", "causal", "predictive", "evaluative", "policy")
_TITLE = re.compile(r"^Article metadata \(.*?\): title: (?P<title>.*?); author: ", re.MULTILINE)


def unit_of(messages: list[dict[str, Any]]) -> str:
    """Which unit a request is for: 'extract', a claim id such as 'C3', 'synthesize', or 'judge'
    (counterpoint eval's judge)."""
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content") or ""
        if content.startswith("Task: extract"):
            return "extract"
        if content.startswith("Task: write the counter-case"):
            return "synthesize"
        if content.startswith("Task: judge"):
            return "judge"
        claim = _CLAIM_ID.search(content)
        if content.startswith("Task: answer one claim") and claim:
            return claim.group(1)
    return "unknown"


@dataclass(frozen=True)
class Request:
    """What a default answer needs from a chat-completions request body."""

    unit: str
    article: str  # as fenced in the request
    task: str  # the user message that states the task
    schema: dict[str, Any]  # the schema the request carries ({} when it carries none)
    title: str | None = None  # as the request states it: a heading, not a sentence to quote

    @classmethod
    def of(cls, body: dict[str, Any]) -> Request:
        messages = body.get("messages") or []
        contents = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
        fenced = next((match for text in contents if (match := _ARTICLE.search(text))), None)
        task = next((text for text in contents if text.startswith("Task:")), "")
        title = next((match.group("title") for text in contents if (match := _TITLE.search(text))), None)
        article = fenced.group("text") if fenced else ""
        return cls(unit_of(messages), article, task, _schema_of(body, contents), title)

    def allowed(self, *path: str) -> list[Any] | None:
        """The values a narrowed schema allows at `path` (through properties and items), if it lists them."""
        node: Any = self.schema
        for step in path:
            node = (node.get("items") if step == "[]" else node.get("properties", {}).get(step)) or {}
        values = node.get("enum")
        return list(values) if isinstance(values, list) else None


def _schema_of(body: dict[str, Any], user_contents: list[str]) -> dict[str, Any]:
    """The schema as sent: in response_format (json_schema, or llama.cpp's json_object form), or
    after the schema-in-prompt instruction; {} for plain JSON mode."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return dict(response_format.get("json_schema", {}).get("schema") or {})
    if isinstance(response_format.get("schema"), dict):
        return dict(response_format["schema"])
    for text in reversed(user_contents):
        if text.startswith("Reply with only a JSON object"):
            try:
                schema = json.loads(text.partition("\n\n")[2])
            except ValueError:
                return {}
            return schema if isinstance(schema, dict) else {}
    return {}


def default_answer(body: dict[str, Any]) -> dict[str, Any] | None:
    """A valid answer for the request's unit, or None when the request is for no known unit."""
    request = Request.of(body)
    if request.unit == "extract":
        return _extraction(request)
    if request.unit == "synthesize":
        return _synthesis(request)
    if re.fullmatch(r"C\d+", request.unit):
        return _rebuttal(request)
    return None


def quotes(request: Request, path: tuple[str, ...], max_chars: int) -> list[str]:
    """Passages of the article that ground a quote at `path`, those of six words or more first: the
    values a narrowed schema allows there, else the article's sentences (a long one cut at a word),
    never its title line."""
    text = request.article
    candidates = request.allowed(*path) or [_cut(s, max_chars) for s in article_mod.sentences(text)]
    found: list[str] = []
    for quote in candidates:
        fenced_marker = "‹‹‹" in quote or "›››" in quote  # changed in the fence: not the article's words
        usable = len(quote) <= max_chars and not fenced_marker and quote != request.title
        if usable and article_mod.grounding_problem(text, quote) is None:
            found.append(quote)
    return sorted(found, key=lambda quote: article_mod.count_words(quote) < 6)  # stable: keeps the article's order


def _cut(sentence: str, max_chars: int) -> str:
    return sentence if len(sentence) <= max_chars else sentence[:max_chars].rsplit(" ", 1)[0]


def _extraction(request: Request) -> dict[str, Any]:
    at_most = re.search(r"at most (\d+) claims", request.task)
    limit = min(DEFAULT_CLAIMS, int(at_most.group(1)) if at_most else DEFAULT_CLAIMS)
    picked = quotes(request, ("claims", "[]", "quote"), 400)[:limit]
    claims = [
        {
            "id": f"C{number}",
            "text": _cut(f"The article states that {quote}", 400),
            "quote": quote,
            "type": _CLAIM_TYPES[(number - 1) % len(_CLAIM_TYPES)],
            "centrality": max(1, 6 - number),
            "check_worthy": True,
        }
        for number, quote in enumerate(picked, start=1)
    ]
    first = picked[0] if picked else "the article's case holds"
    return {"thesis": _cut(f"The author wants the reader to accept that {first}", 400), "claims": claims}


def _rebuttal(request: Request) -> dict[str, Any]:
    claim = _CLAIM.search(request.task)
    claim_id, text = (claim.group("id"), claim.group("text")) if claim else (request.unit, "the claim")
    return {
        "steelman": _cut(f"At its strongest, claim {claim_id} holds that {text}", 800),
        "rebuttals": [
            {
                "type": "counter-evidence",
                "argument": f"The record may not bear out claim {claim_id}. Its evidence is asserted, not shown.",
                "strength": 4,
                "what_to_check": [f"Official figures on what claim {claim_id} describes"],
            },
            {
                "type": "alternative-explanation",
                "argument": f"What claim {claim_id} credits to one cause has other plausible causes.",
                "strength": 3,
                "what_to_check": ["Independent accounts of the same events", "Statements by those involved"],
            },
        ],
        "missing_context": [
            {
                "point": f"What those who dispute claim {claim_id} say.",
                "why_it_matters": "A reader hears only one side of the case.",
            }
        ],
    }


def _synthesis(request: Request) -> dict[str, Any]:
    listed = [(m.group("id"), int(m.group("strength"))) for m in _LISTED_REBUTTAL.finditer(request.task)]
    allowed = request.allowed("strongest_rebuttals", "[]")
    ranked = sorted((pair for pair in listed if allowed is None or pair[0] in allowed), key=lambda pair: -pair[1])
    thesis = re.search(r"^Thesis: (.*)$", request.task, re.MULTILINE)
    date = re.search(r"article's date \((.*?)\) may", request.task)
    failed = re.search(r"could not be analysed: (.*?)\.?$", request.task, re.MULTILINE)
    caveats = [
        _cut(f"The article's date ({date.group(1) if date else 'unknown'}) may lie beyond what the model knows.", 300)
    ]
    if failed and failed.group(1) != "none":
        caveats.append(_cut(f"These claims could not be analysed: {failed.group(1)}.", 300))
    rhetoric = quotes(request, ("rhetoric", "[]", "quote"), 300)[:1]
    return {
        "counter_thesis": _cut(
            f"The case that {thesis.group(1) if thesis else 'the article makes'} rests on claims the record may "
            "not bear out, and leaves out what its critics say.",
            1000,
        ),
        "strongest_rebuttals": list(dict.fromkeys(rebuttal_id for rebuttal_id, _ in ranked))[:3],
        "rhetoric": [
            {"quote": quote, "device": "assertion", "note": "States as settled what the article does not show."}
            for quote in rhetoric
        ],
        "open_questions": ["What evidence would settle the central claim?", "What do the article's critics say?"],
        "caveats": caveats,
    }


@dataclass(frozen=True)
class Fault:
    """How a scripted failure looks on the wire: an HTTP status, a held request that never answers
    (`hang`, a timeout), or a 200 answer with this content, finish reason, refusal or no choices."""

    kind: str
    status: int = 200
    hang: bool = False
    content: str | None = None
    finish_reason: str = "stop"
    refusal: str | None = None
    no_choices: bool = False


def check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")


def fault(kind: str, answer: dict[str, Any] | None) -> Fault:
    """The failure `kind` for a unit whose valid answer is `answer` (the broken kinds start from it)."""
    check_kind(kind)
    answer = answer or {}
    statuses = {"http_429": 429, "http_500": 500, "http_401": 401}
    if kind in statuses:
        return Fault(kind, status=statuses[kind])
    if kind == "timeout":
        return Fault(kind, hang=True)
    if kind == "refusal":
        return Fault(kind, refusal="I can't help with that request.")
    if kind == "empty":
        return Fault(kind, no_choices=True)
    if kind == "malformed":
        return Fault(kind, content="Here is my analysis of the article, in prose rather than JSON.")
    whole = json.dumps(answer)
    if kind == "length":
        return Fault(kind, content=whole[: max(1, len(whole) // 2)], finish_reason="length")
    if kind == "invalid":  # its first required field left out
        return Fault(kind, content=json.dumps(dict(list(answer.items())[1:])))
    return Fault(kind, content=json.dumps(ungrounded(answer)))


def ungrounded(answer: dict[str, Any]) -> dict[str, Any]:
    """`answer` with a quote the article does not hold; a per-claim answer, which quotes nothing,
    gets a lead citing a URL (an invented source) instead."""
    if answer.get("claims"):
        return {**answer, "claims": [{**answer["claims"][0], "quote": UNGROUNDED_QUOTE}, *answer["claims"][1:]]}
    if "rhetoric" in answer:
        device = {"quote": UNGROUNDED_QUOTE, "device": "assertion", "note": "A quote the author never wrote."}
        return {**answer, "rhetoric": [device, *answer["rhetoric"][1:]]}
    if answer.get("rebuttals"):
        first = {**answer["rebuttals"][0], "what_to_check": [MADE_UP_LEAD]}
        return {**answer, "rebuttals": [first, *answer["rebuttals"][1:]]}
    return {**answer, "quote": UNGROUNDED_QUOTE}


class ScriptedUnits:
    """Per-unit directions a test gives a fake: failures to serve first (`fail`) and fields that
    override the unit's default answer (`answer`). Thread-safe: the fake server answers on threads."""

    def __init__(self) -> None:
        self._faults: dict[str, list[str]] = {}
        self._fields: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def fail(self, unit: str, kind: str, times: int = 1) -> None:
        check_kind(kind)
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._lock:
            self._faults.setdefault(unit, []).extend([kind] * times)

    def answer(self, unit: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self._fields.setdefault(unit, {}).update(fields)

    def take_fault(self, unit: str, body: dict[str, Any]) -> Fault | None:
        """The next failure scripted for `unit`, made from its answer to `body`; None when none is left."""
        with self._lock:
            kinds = self._faults.get(unit)
            kind = kinds.pop(0) if kinds else None
        return None if kind is None else fault(kind, self.answer_for(unit, body))

    def answer_for(self, unit: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The default answer to `body` with the fields given for `unit` in its place."""
        answer = default_answer(body)
        with self._lock:
            fields = dict(self._fields.get(unit, {}))
        return None if answer is None else {**answer, **fields}
