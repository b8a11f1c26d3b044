"""A run whose article, metadata and model outputs all carry markup payloads (for the HTML tests).

The run goes through the real engine (`api.run_brief`) with a `FakeLLM` answering every unit, so
the page under test is exactly what `counterpoint run` would write.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pipeline import api
from pipeline.article import from_text
from pipeline.engine import Settings
from pipeline.testing import FakeLLM

SCRIPT = "<script>document.title='pwned';window.__pwned=1</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
LINK = "<a href=\"javascript:document.title='pwned'\">this link</a>"
JS_URL = "javascript:document.title='pwned'"
PAYLOADS = (SCRIPT, IMG, LINK)

ARTICLE = f"""Opinion: {SCRIPT} is harmless

The council says {SCRIPT} must be published as is. Editors who object are simply wrong, and {IMG} proves it beyond doubt.

Readers should click {LINK} to see the evidence. Anyone who disagrees has not read the report, which runs to many pages and settles every question about the matter for good.
"""

CLAIM_QUOTES = {
    "C1": f"The council says {SCRIPT} must be published as is.",
    "C2": f"{IMG} proves it beyond doubt.",
    "C3": f"click {LINK} to see the evidence",
}
# Overlaps C1's quote, so the page has to nest or split the two marks.
RHETORIC_QUOTE = f"{SCRIPT} must be published as is. Editors who object are simply wrong"


def _rebuttal(claim_id: str) -> dict[str, Any]:
    return {
        "steelman": f"Steelman for {claim_id}: {SCRIPT}",
        "rebuttals": [
            {
                "type": "counter-evidence",
                "argument": f"Weaker {claim_id} {IMG}",
                "strength": 2,
                "what_to_check": [f"Check {LINK}"],
            },
            {
                "type": "logical-flaw",
                "argument": f"Stronger {claim_id} {SCRIPT}",
                "strength": 5,
                "what_to_check": [f"Check {JS_URL}"],
            },
        ],
        "missing_context": [{"point": f"Context {IMG}", "why_it_matters": f"Because {SCRIPT}"}],
    }


def answer(unit: str, body: dict[str, Any]) -> dict[str, Any]:
    if unit == "extract":
        return {
            "thesis": f"The thesis {SCRIPT}",
            "claims": [
                {
                    "id": claim_id,
                    "text": f"Claim {claim_id} says {IMG}",
                    "quote": quote,
                    "type": "policy",
                    "centrality": 3,
                    "check_worthy": True,
                }
                for claim_id, quote in CLAIM_QUOTES.items()
            ],
        }
    if unit == "synthesize":
        return {
            "counter_thesis": f"Counter {SCRIPT} {LINK}",
            "strongest_rebuttals": ["C1-R2", "C2-R2"],
            "rhetoric": [{"quote": RHETORIC_QUOTE, "device": f"device {IMG}", "note": f"note {LINK}"}],
            "open_questions": [f"Question {SCRIPT}"],
            "caveats": [f"Caveat {IMG}"],
        }
    return _rebuttal(unit)


def write_hostile_run(runs_dir: Path) -> Path:
    """Run the hostile article through the engine; returns the run directory."""
    article = from_text(ARTICLE, "hostile.txt", url=JS_URL, site=f"Site {IMG}", date=f"2026-01-01 {SCRIPT}")
    llm = FakeLLM(responder=answer)
    brief = asyncio.run(api.run_brief(article, Settings(model=llm.model), llm, runs_dir=runs_dir))
    assert brief.status == "complete", brief.notes
    assert brief.run_dir is not None
    return brief.run_dir
