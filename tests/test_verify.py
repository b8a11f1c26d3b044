"""Verification checks (pipeline/brief/verify.py): precision and recall on crafted texts, and the
checks as a run writes, renders and validates them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.brief.verify import ArticleIndex, count, item_checks, mentions, text_checks, with_checks

from .conftest import SEED, read_brief

ARTICLE = """Bike lanes are a waste of money

The city council voted in March 2015 to spend 3 million dollars on bike lanes. Mayor Jane Smith said
40% of residents cycle at least once a week, and the Chamber of Commerce objected. Smith met
Dr. Alan Reyes on 12 March 2015; about three thousand people attended the hearing.
See www.city.gov for the minutes. The U.S. average is lower, and the council will spend $2.5bn on roads.
"""

# (the model's text, what must be flagged: (kind, text) in order). Recall: every specific the
# article lacks is flagged; precision: what the article states, in any spelling, and ordinary
# capitalised words are not.
CASES = [
    # the brief's own ids and a vague source opening a sentence are not specifics to verify
    ("Claim C1 rests on C2-R1. Official figures may not bear it out.", []),
    ("Recent studies disagree, and Gallup polls show otherwise.", [("citation", "Gallup polls")]),
    # the example: the year is stated (March 2015), the agreement is not
    ("The 2015 Paris agreement set binding targets.", [("citation", "Paris agreement")]),
    ("The 2016 Paris agreement set binding targets.", [("date", "2016"), ("citation", "Paris agreement")]),
    (
        "A 2019 Brookings study found lanes cut traffic by 17%.",
        [("date", "2019"), ("citation", "Brookings study"), ("figure", "17%")],
    ),
    ("According to the Pew Research Center, support has fallen.", [("citation", "Pew Research Center")]),
    ("The IPCC report says otherwise.", [("citation", "IPCC report")]),
    ("Gallup's poll disagrees. Gallup found it too.", [("citation", "Gallup's poll")]),
    # figures: the article's values in other spellings are stated
    ("The council spent $3m, or 3,000,000 dollars, and 40 per cent cycle.", []),
    ("Three million dollars is 3 million too many; $2.5 billion for roads.", []),
    ("About 3,000 attended, not 3,500.", [("figure", "3,500")]),
    ("Only 7.5% cycle daily and the scheme costs £4.2bn.", [("figure", "7.5%"), ("figure", "£4.2bn")]),
    (
        "In the 1990s, Amsterdam invested 10 times as much.",
        [("date", "1990s"), ("name", "Amsterdam"), ("figure", "10")],
    ),
    ("It ranks 4th among cities.", [("figure", "4th")]),
    ("Half a million people cycle in Copenhagen.", [("figure", "Half a million"), ("name", "Copenhagen")]),
    # dates: a date agreeing with the article's is stated; a new day is not
    ("The vote in March 2015 and the hearing on 12 March 2015 were public.", []),
    ("The hearing on March 12, 2015 was public.", []),
    ("The hearing on March 14, 2015 was public.", [("date", "March 14, 2015")]),
    ("A review is due on 2026-01-15.", [("date", "2026-01-15")]),
    # names: stated in full, by surname, or with a title; new ones flagged whole
    ("Smith's plan ignores what Jane Smith promised.", []),
    ("Mayor Smith and Dr. Reyes disagree.", []),
    (
        "Professor John Doe at Harvard University disagrees.",
        [("name", "Professor John Doe"), ("name", "Harvard University")],
    ),
    (
        "The Bank of England and the European Central Bank disagree.",
        [("name", "Bank of England"), ("name", "European Central Bank")],
    ),
    ("The Chamber of Commerce survey found otherwise.", [("citation", "Chamber of Commerce survey")]),
    ("The US average is lower.", []),  # "U.S." in the article
    ("COVID-19 changed commuting in G7 cities.", [("name", "COVID-19"), ("name", "G7")]),
    ("ISIS-held towns are irrelevant here.", [("name", "ISIS")]),
    ("The Clean Air Act of 1970 matters.", [("citation", "Clean Air Act"), ("date", "1970")]),
    # urls
    (
        "See https://example.org/data and nyc.gov/bikes, or www.city.gov.",
        [("url", "https://example.org/data"), ("url", "nyc.gov/bikes")],
    ),
    # precision: sentence-first words, demonyms, parties, months alone, quotes, vague sources
    ("However, critics argue cycling is rare. Critics say so. Moreover it rains.", []),
    ("Americans and Republicans differ. In March, voters decide.", []),
    ('She said "We will see" and left.', []),
    ("Studies show experts disagree; some estimates are higher.", []),
    ("Higher costs follow. Estimates of ridership vary.", []),
]


@pytest.fixture(scope="module")
def index() -> ArticleIndex:
    return ArticleIndex(ARTICLE)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[case[0][:40] for case in CASES])
def test_checks_flag_what_the_article_does_not_state_and_nothing_else(
    index: ArticleIndex, text: str, expected: list[tuple[str, str]]
) -> None:
    checks = text_checks(text, index)
    assert [(check["kind"], check["text"]) for check in checks] == expected
    for check in checks:  # the contract every renderer relies on
        assert check["text"] in text
        assert not mentions(ARTICLE, check["text"])


def test_an_article_mention_is_whole_words_folded_and_any_case() -> None:
    article = "The “Ford” plan, as the Mayor’s office — and the US — would afford it."
    assert mentions(article, 'the "ford" plan')
    assert mentions(article, "mayor's office - and")
    assert mentions(article, "U.S.")  # dots are not compared in names
    assert not mentions(article, "Ford Motor")
    assert not mentions("They could afford it.", "Ford")  # inside another word is not a mention


def test_an_item_gets_each_specific_once_over_all_its_fields(index: ArticleIndex) -> None:
    rebuttal = {
        "argument": "A 2019 Brookings study found the opposite.",
        "what_to_check": ["The 2019 Brookings study's sample", "Whether 2019 was typical"],
    }
    assert item_checks(rebuttal, ("argument", "what_to_check"), index) == [
        {"kind": "date", "text": "2019"},
        {"kind": "citation", "text": "Brookings study"},
    ]


def test_with_checks_covers_every_rebuttal_and_missing_context_item_and_counts_them() -> None:
    claims = [
        {
            "id": "C1",
            "rebuttals": [{"argument": "They say Lyon spent 4 million.", "what_to_check": ["Lyon's budget"]}],
            "missing_context": [{"point": "Nothing new here.", "why_it_matters": "The 3 million is small."}],
        },
        {"id": "C2", "rebuttals": [], "missing_context": []},
    ]
    checked = with_checks(claims, ARTICLE)
    assert checked[0]["rebuttals"][0]["checks"] == [
        {"kind": "name", "text": "Lyon"},
        {"kind": "figure", "text": "4 million"},
    ]
    assert checked[0]["missing_context"][0]["checks"] == []
    assert count(checked) == {"total": 2, "figure": 1, "date": 0, "name": 1, "url": 0, "citation": 0}


# -- in a run -----------------------------------------------------------------------------------


def _items(brief: dict) -> list[tuple[dict, list[str]]]:
    found = []
    for claim in brief["claims"]:
        found += [(r, [r["argument"], *r["what_to_check"]]) for r in claim["rebuttals"]]
        found += [(m, [m["point"], m["why_it_matters"]]) for m in claim["missing_context"]]
    return found


def test_a_run_writes_checks_marks_them_and_validates_them(cli, runs_dir: Path) -> None:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    article = (result.run_dir / "article.txt").read_text(encoding="utf-8")
    items = _items(brief)
    assert items and all("checks" in item for item, _ in items)
    flagged = [(check, texts) for item, texts in items for check in item["checks"]]
    assert len(flagged) == brief["run"]["checks"]["total"] == 27
    for check, texts in flagged:
        assert any(check["text"] in text for text in texts)
        assert not mentions(article, check["text"])
    assert {"kind": "name", "text": "Levada Center"} in [c for c, _ in flagged]
    assert "27 to verify (17 dates, 10 names) before use" in result.stderr.splitlines()[0]

    html = (result.run_dir / "brief.html").read_text(encoding="utf-8")
    assert html.count('<mark class="verify" title="Verify before use: this name is not in the article">') >= 10
    assert (
        '<mark class="verify" title="Verify before use: this name is not in the article">Levada Center</mark>' in html
    )
    assert "27 to verify (17 dates, 10 names)" in html
    markdown = (result.run_dir / "brief.md").read_text(encoding="utf-8")
    assert '- Verify before use (not in the article): "Levada Center" (name), "2015" (date), "2016" (date)' in markdown
    manifest = json.loads((result.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["summary"]["checks"] == 27

    valid = cli("validate", str(result.run_dir))
    assert valid.exit_code == 0, valid.stdout
    assert "verification checks" in valid.stderr


def test_validate_rejects_a_check_that_is_not_in_its_item_or_is_in_the_article(cli, tmp_path: Path) -> None:
    result = cli("run", str(SEED))
    copy = tmp_path / "copy"
    shutil.copytree(result.run_dir, copy)
    brief = read_brief(copy)
    rebuttal = brief["claims"][0]["rebuttals"][0]
    rebuttal["checks"] += [{"kind": "name", "text": "Putin"}, {"kind": "figure", "text": "42%"}]
    (copy / "brief.json").write_text(json.dumps(brief), encoding="utf-8")
    problems = cli("validate", str(copy)).stdout.splitlines()
    assert problems == [
        "$.claims[0].rebuttals[0].checks[4]: 'Putin' is not in the item's text",
        "$.claims[0].rebuttals[0].checks[5]: '42%' is not in the item's text",
    ]
    rebuttal["checks"][-2:] = [{"kind": "name", "text": "Russian"}]  # in the item, and in the article
    rebuttal["checks"].append({"kind": "bogus", "text": "Tartus"})
    (copy / "brief.json").write_text(json.dumps(brief), encoding="utf-8")
    problems = cli("validate", str(copy)).stdout.splitlines()
    assert any(re.search(r"checks\[5\]\.kind|'bogus' is not one of", p) for p in problems), problems
    assert "$.claims[0].rebuttals[0].checks[4]: 'Russian' is in the article, so it needs no check" in problems


def test_validate_passes_a_brief_written_before_checks_and_says_so(cli, tmp_path: Path) -> None:
    result = cli("run", str(SEED))
    copy = tmp_path / "old"
    shutil.copytree(result.run_dir, copy)
    brief = read_brief(copy)
    for item, _ in _items(brief):
        del item["checks"]
    del brief["run"]["checks"], brief["run"]["models"]
    (copy / "brief.json").write_text(json.dumps(brief), encoding="utf-8")
    valid = cli("validate", str(copy), "--json")
    assert valid.exit_code == 0, valid.stdout
    report = json.loads(valid.stdout)
    assert report["ok"] and report["predates_checks"] is True
    assert "written before verification checks" in report["checked"]
    # Half-checked is damage, not age: the schema names what is missing.
    brief["claims"][0]["rebuttals"][0]["checks"] = []
    (copy / "brief.json").write_text(json.dumps(brief), encoding="utf-8")
    damaged = cli("validate", str(copy))
    assert damaged.exit_code == 1
    assert "'checks' is a required property" in damaged.stdout
