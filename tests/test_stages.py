"""Stage logic with FakeLLM injected: validation, semantic checks, re-asks, grounding, ordering."""

from __future__ import annotations

import asyncio
import copy
import json
import re

import pytest

from pipeline import article as article_mod
from pipeline import generate_brief, stages
from pipeline.errors import UnitFailed
from pipeline.llm import CallContext, Reply, structured
from pipeline.runs import RunRecord
from pipeline.testing import FakeLLM, scripted_handler

from .conftest import ROOT, SEED, SEED_ARTICLE, extract, extract_after_a_bad_claim

GOLDEN = ROOT / "tests" / "data" / "seed_brief.md"


def test_extraction_grounds_quotes_with_offsets(seed_script) -> None:
    raw = extract(FakeLLM(seed_script["extract"]))
    grounded = stages.ground_claims(SEED_ARTICLE, raw)
    for claim in grounded["claims"]:
        assert SEED_ARTICLE.text[claim["start"] : claim["end"]] == claim["quote"]
    # The model wrote a straight apostrophe; the brief keeps the article's own typography.
    assert grounded["claims"][0]["quote"].startswith("Putin’s primary goal")


def test_paraphrased_quote_is_rejected_and_reasked(seed_script) -> None:
    llm = extract_after_a_bad_claim(seed_script, 1, "quote", "Russia's army turned the tide of the war.")
    assert len(llm.history) == 2
    repair = llm.history[1]["messages"][-1]["content"]
    assert "$.claims[1].quote: not found verbatim in the article" in repair
    assert llm.history[1]["messages"][-2]["role"] == "assistant"
    assert len(llm.history[1]["messages"]) == 5, "a fresh list: the request, the bad reply, the errors"


def test_duplicate_ids_are_rejected(seed_script) -> None:
    llm = extract_after_a_bad_claim(seed_script, 2, "id", "C1")
    repair = llm.history[1]["messages"][-1]["content"]
    assert "$.claims[2].id: duplicate id C1" in repair


def test_a_repeated_claim_is_dropped_with_a_note_not_reasked(seed_script) -> None:
    looping = copy.deepcopy(seed_script["extract"])
    looping["claims"][3] = {**looping["claims"][0], "id": "C4", "text": looping["claims"][0]["text"].upper()}
    looping["claims"][5] = {**looping["claims"][0]}  # the same id too: a weak model's loop
    llm = FakeLLM(looping)
    output = extract(llm)
    assert len(llm.history) == 1, "a repeat is not worth a re-ask"
    selected, notes = stages.select_claims(output, 8)
    assert [c["id"] for c in selected["claims"]] == ["C1", "C2", "C3", "C5", "C7", "C8"]
    assert notes == ["The model stated 2 claim(s) twice; each was analysed once."]


def test_rebuttal_with_url_lead_is_reasked(seed_script) -> None:
    bad = copy.deepcopy(seed_script["rebuttals"]["C1"])
    bad["rebuttals"][1]["what_to_check"].append("see www.example.org/report")
    llm = FakeLLM(bad, seed_script["rebuttals"]["C1"])
    claim = stages.ground_claims(SEED_ARTICLE, seed_script["extract"])["claims"][0]
    base = stages.base_messages(SEED_ARTICLE, "n0nce", None)
    output = asyncio.run(stages.rebut_claim(llm, base, claim, "n0nce", reasks=2))
    assert [r["id"] for r in stages.number_rebuttals("C1", output)["rebuttals"]] == ["C1-R1", "C1-R2"]
    assert "$.rebuttals[1].what_to_check[1]: no URLs" in llm.history[1]["messages"][-1]["content"]


def test_synthesis_rejects_unknown_rebuttal_ids(seed_script) -> None:
    bad = copy.deepcopy(seed_script["synthesize"])
    bad["strongest_rebuttals"] = ["C9-R1"]
    assert stages.check_synthesis(bad, SEED_ARTICLE, {"C1-R1"}) == [
        "$.strongest_rebuttals[0]: C9-R1 is not one of the listed rebuttal ids"
    ]


def test_per_claim_prompt_starts_with_the_shared_article_prefix(seed_script) -> None:
    answer = scripted_handler(seed_script)
    llm = FakeLLM(responder=answer)
    generate_brief(SEED.read_text(), llm=llm)
    per_claim = [h["messages"] for h in llm.history if h["stage"] == "rebut"]
    assert len(per_claim) == 8
    for messages in per_claim:
        assert messages[:2] == per_claim[0][:2], "system prompt and fenced article are identical"
        assert messages[1]["content"].count(SEED_ARTICLE.text.splitlines()[-1]) == 1
    assert len({m[2]["content"] for m in per_claim}) == 8


def test_structured_refusal_and_truncation_are_failure_kinds() -> None:
    ctx = CallContext("extract", "extract")
    refused = FakeLLM(Reply(content=None, refusal="no"))
    with pytest.raises(UnitFailed) as failure:
        asyncio.run(structured(refused, ctx, [], "claims", lambda d: [], max_tokens=10))
    assert failure.value.kind == "refused"
    cut = FakeLLM(Reply(content='{"a', finish_reason="length"), Reply(content='{"a', finish_reason="length"))
    with pytest.raises(UnitFailed) as failure:
        asyncio.run(structured(cut, ctx, [], "claims", lambda d: [], max_tokens=10))
    assert failure.value.kind == "truncated" and len(cut.history) == 2


def test_every_attempt_is_logged_with_usage() -> None:
    record = RunRecord()  # no run directory: the calls log is kept in memory
    llm = FakeLLM("nope", {"thesis": "t", "claims": []}, log=record.log)
    records = record.calls
    with pytest.raises(UnitFailed):
        asyncio.run(
            structured(
                llm,
                CallContext("extract", "extract"),
                [{"role": "user", "content": "x" * 80}],
                "claims",
                lambda d: [],
                max_tokens=10,
                reasks=1,
            )
        )
    assert [r["outcome"] for r in records] == ["invalid", "invalid"]
    assert [r["attempt"] for r in records] == [1, 2]
    assert all(r["usage"]["prompt_tokens"] > 0 for r in records)
    assert records[0]["raw"] == "nope" and "not valid JSON" in records[0]["errors"][0]


def test_locate_tolerates_whitespace_and_typography_only() -> None:
    text = "He said “it’s over”\n  and left — quickly."
    assert article_mod.locate(text, 'said "it\'s over" and left - quickly.') == (3, len(text))
    assert article_mod.locate(text, "he said it's over") is None  # case and punctuation matter
    assert article_mod.locate(text, "   ") is None


def test_title_author_and_date_are_found() -> None:
    found = article_mod.from_text("# Cut the tax now\n\nBy Ann Other | March 3, 2024\n\n" + "word " * 50)
    assert (found.title, found.author) == ("Cut the tax now", "Ann Other")
    dated = article_mod.from_text("A headline\nPublished March 3, 2024\n\n" + "word " * 50)
    assert (dated.date, dated.date_text) == ("2024-03-03", "March 3, 2024")  # ISO, the wording kept
    assert SEED_ARTICLE.author == "James Jay Carafano"
    assert SEED_ARTICLE.title.startswith("Russia may be leaving Syria")


def normalise_golden(markdown: str) -> str:
    return re.sub(r"^\*\*Run:\*\* .*$", "**Run:** <run>", markdown, flags=re.MULTILINE)


def test_golden_brief_markdown(seed_script) -> None:
    """brief.md for the seed article under a scripted fake; UPDATE_GOLDEN=1 rewrites the file."""
    import os

    brief = generate_brief(SEED.read_text(), llm=FakeLLM(responder=scripted_handler(seed_script)))
    markdown = normalise_golden(brief.to_markdown())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(markdown)
    assert markdown == GOLDEN.read_text()
    assert json.loads(brief.to_json())["status"] == "complete"
