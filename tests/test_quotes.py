"""Quotes that ground claims (matching up to copying differences, long enough to mean something),
the claim limit, and ids in the synthesis."""

from __future__ import annotations

import copy
import json
import unicodedata
from pathlib import Path

import pytest

from pipeline import article as article_mod
from pipeline import stages
from pipeline.testing import FakeLLM

from .conftest import SEED, SEED_ARTICLE, extract, extract_after_a_bad_claim, read_brief

# -- locate: what a copied passage may change -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quote", "own"),
    [
        ("The co\u00adoperation failed badly.", "The cooperation failed badly.", "co\u00adoperation"),  # soft hyphen
        ("A zero\u200bwidth space here.", "A zerowidth space here.", "zero\u200bwidth"),
        ("He paused\u2026 and then went on.", "He paused... and then went on.", "\u2026"),
        ("It was\u2014as ever\u2014too late.", "It was--as ever--too late.", "\u2014"),
        ("It was \u2014 as ever \u2014 too late.", "It was --- as ever --- too late.", "\u2014"),
        (unicodedata.normalize("NFD", "Le café était fermé."), "Le café était fermé.", "e\u0301"),
        ("Le café était fermé.", unicodedata.normalize("NFD", "Le café était fermé."), "é"),
    ],
)
def test_locate_matches_copying_variants_and_points_at_the_articles_own_characters(
    text: str, quote: str, own: str
) -> None:
    article = "Before it. " + text + " After it."
    span = article_mod.locate(article, quote)
    assert span is not None
    start, end = span
    assert article[start:end] == text, "the span is the article's own characters"
    assert own in article[start:end]


@pytest.mark.parametrize("quote", ["cafe", "paused.", "co-operation"])
def test_locate_does_not_match_part_of_a_character_or_other_punctuation(quote: str) -> None:
    article = unicodedata.normalize("NFD", "Le café. He paused\u2026 co\u00adoperation")
    assert article_mod.locate(article, quote) is None


def test_a_quote_must_hold_four_words_or_a_whole_sentence() -> None:
    text = "Taxes are high. C'est faux. The plan, he said, will fail.\n我们认为这个政策是错误的。好。"
    too_short = "too short to ground a claim; quote at least 4 words or a whole sentence"
    for quote in ("the", "The", ".", "he said", "will fail.", "政策", "high."):
        assert article_mod.grounding_problem(text, quote) == (
            "not found verbatim in the article" if quote == "the" else too_short
        ), quote
    for quote in ("C'est faux.", "C'est faux", "Taxes are high.", "The plan, he said", "这个政策是", "好。"):
        assert article_mod.grounding_problem(text, quote) is None, quote


# -- the stages re-ask ----------------------------------------------------------------------


def test_a_too_short_claim_quote_is_reasked(seed_script) -> None:
    llm = extract_after_a_bad_claim(seed_script, 2, "quote", "the")
    assert len(llm.history) == 2
    assert (
        "$.claims[2].quote: too short to ground a claim; quote at least 4 words or a whole sentence: 'the'"
        in llm.history[1]["messages"][-1]["content"]
    )


def test_a_too_short_rhetoric_quote_and_a_repeated_strongest_rebuttal_are_refused(seed_script) -> None:
    bad = copy.deepcopy(seed_script["synthesize"])
    bad["rhetoric"][0]["quote"] = "."
    bad["strongest_rebuttals"] = ["C2-R1", "C4-R1", "C2-R1"]
    assert stages.check_synthesis(bad, SEED_ARTICLE, {"C2-R1", "C4-R1"}) == [
        "$.strongest_rebuttals[2]: C2-R1 is listed twice; list each once",
        "$.rhetoric[0].quote: too short to ground a claim; quote at least 4 words or a whole sentence: '.'",
    ]


def test_more_claims_than_max_claims_keeps_the_most_central(seed_script) -> None:
    llm = FakeLLM(seed_script["extract"])
    output = extract(llm, max_claims=5)
    assert len(llm.history) == 1, "no re-ask for too many claims"
    kept, notes = stages.select_claims(output, 5)
    # Centralities C1..C8: 4 5 4 5 2 3 3 5; the 5s, then the first 4s, in the model's order.
    assert [c["id"] for c in kept["claims"]] == ["C1", "C2", "C3", "C4", "C8"]
    assert notes == ["The model returned 8 claims; the 5 most central were kept (--max-claims 5)."]
    assert stages.select_claims(output, 8) == (output, [])


# -- through the CLI and the fake server ---------------------------------------------------


def test_run_with_more_claims_than_max_claims_writes_a_brief_with_a_note(cli, server) -> None:
    result = cli("run", str(SEED), "--max-claims", "5")
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert [c["id"] for c in brief["claims"]] == ["C1", "C2", "C3", "C4", "C8"]
    assert "The model returned 8 claims; the 5 most central were kept (--max-claims 5)." in brief["notes"]
    assert len(server.requests_for("extract")) == 1
    assert sorted(r.unit for r in server.requests if r.unit.startswith("C")) == ["C1", "C2", "C3", "C4", "C8"]
    assert cli("validate", str(result.run_dir)).exit_code == 0


def test_run_reasks_a_duplicate_strongest_rebuttal(cli, server, seed_script) -> None:
    synthesis = {**seed_script["synthesize"], "strongest_rebuttals": ["C2-R1", "C2-R1"]}
    server.script("synthesize", synthesis)
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    asks = server.requests_for("synthesize")
    assert len(asks) == 2
    assert "C2-R1 is listed twice" in asks[1].body["messages"][-1]["content"]


@pytest.fixture
def seed_run(cli) -> Path:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    return result.run_dir


def test_validate_refuses_a_quote_of_the_and_duplicate_strongest_rebuttals(cli, seed_run: Path) -> None:
    text = (seed_run / "article.txt").read_text(encoding="utf-8")
    brief = read_brief(seed_run)
    start = text.index(" the ") + 1
    brief["claims"][0].update(quote="the", start=start, end=start + 3)
    brief["synthesis"]["strongest_rebuttals"].append(brief["synthesis"]["strongest_rebuttals"][0])
    (seed_run / "brief.json").write_text(json.dumps(brief))
    result = cli("validate", str(seed_run))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "$.claims[0].quote: 'the' is too short to ground a claim (at least 4 words or a whole sentence)",
        "$.synthesis.strongest_rebuttals[4]: duplicate rebuttal id C2-R1",
    ]


def test_run_where_the_model_repeats_a_claim_analyses_it_once(cli, server, seed_script) -> None:
    looping = json.loads(json.dumps(seed_script["extract"]))
    looping["claims"][1] = {**looping["claims"][0]}  # the same id and text: how a small local model loops
    server.script("extract", looping)
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert [c["id"] for c in brief["claims"]] == ["C1", "C3", "C4", "C5", "C6", "C7", "C8"]
    assert "The model stated 1 claim(s) twice; each was analysed once." in brief["notes"]
    assert len(server.requests_for("extract")) == 1
    assert cli("validate", str(result.run_dir)).exit_code == 0


def test_more_claims_than_the_cli_allows_are_still_cut_not_refused(cli, server, seed_script) -> None:
    """--max-claims stops at 12, but a model may return more: the schema leaves room to cut them."""
    many = json.loads(json.dumps(seed_script["extract"]))
    extra = [
        {**claim, "id": f"C{9 + n}", "text": f"{claim['text']} (restated {n})", "centrality": 1}
        for n, claim in enumerate(many["claims"][:6])
    ]
    many["claims"] += extra  # 14 claims
    server.script("extract", many)
    for claim in extra[:4]:  # the 12 kept: the 8 given claims, then the first 4 of the least central
        server.script(claim["id"], seed_script["rebuttals"]["C1"])
    result = cli("run", str(SEED), "--max-claims", "12")
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert [c["id"] for c in brief["claims"]] == [f"C{n}" for n in range(1, 13)]
    assert "The model returned 14 claims; the 12 most central were kept (--max-claims 12)." in brief["notes"]
    assert len(server.requests_for("extract")) == 1
