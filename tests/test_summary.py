"""brief.html opens with a summary: the counter-thesis, the strongest rebuttals by strength (ties in
the synthesis' order) linked to their cards, the first things to check, and two views that need no
script (the browser test clicks them)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.brief.html import FIRST_CHECKS, render_html
from pipeline.brief.markdown import render_markdown

from .conftest import read_brief
from .htmltree import parse
from .review_helpers import make_run


@pytest.fixture
def seed(cli) -> tuple[dict[str, Any], str]:
    run_dir: Path = make_run(cli)
    return read_brief(run_dir), (run_dir / "article.txt").read_text(encoding="utf-8")


def with_strengths(brief: dict[str, Any], strengths: dict[str, int], order: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(brief)
    for claim in out["claims"]:
        for rebuttal in claim["rebuttals"]:
            rebuttal["strength"] = strengths.get(rebuttal["id"], rebuttal["strength"])
    out["synthesis"]["strongest_rebuttals"] = order
    return out


def test_the_summary_comes_before_the_first_claim_card(seed: tuple[dict[str, Any], str]) -> None:
    brief, article = seed
    html = render_html(brief, article)
    assert html.index('id="summary"') < html.index('class="card') < html.index('id="synthesis"')
    summary = parse(html).by_id("summary")
    assert brief["synthesis"]["counter_thesis"] in summary.text() and brief["thesis"] in summary.text()


def test_strongest_rebuttals_are_ordered_by_strength_ties_in_the_synthesis_order(
    seed: tuple[dict[str, Any], str],
) -> None:
    brief, article = seed
    ids = [r["id"] for c in brief["claims"] for r in c["rebuttals"]]
    a, b, c, d = ids[:4]
    # The model listed a 2/5 first; two 4/5 ties keep their order (d before b); an unknown id goes last.
    changed = with_strengths(brief, {a: 2, b: 4, c: 5, d: 4}, [a, "C9-R1", d, b, c])
    dom = parse(render_html(changed, article))
    items = dom.by_id("summary").find_all("ol")[0].find_all("li")
    assert [li.find_all("a")[0].attrs["href"] if li.find_all("a") else li.text() for li in items] == [
        f"#rebuttal-{c}",
        f"#rebuttal-{d}",
        f"#rebuttal-{b}",
        f"#rebuttal-{a}",
        "C9-R1 (not in the brief)",
    ]
    for rid in (a, b, c, d):
        assert dom.by_id(f"rebuttal-{rid}").has_class("strongest"), "the strongest-only view keeps it"
    synthesis_md = render_markdown(changed).split("## Synthesis")[1]
    listed = re.findall(r"^1\. \*\*(C\d+-R\d)\*\*", synthesis_md, flags=re.MULTILINE)
    assert listed == [c, d, b, a], "brief.md orders them the same way"
    assert not [
        li for li in dom.find_all("li") if li.attrs.get("id") == f"rebuttal-{ids[4]}" and li.has_class("strongest")
    ]


def test_first_things_to_check_come_from_the_strongest_rebuttals(seed: tuple[dict[str, Any], str]) -> None:
    brief, article = seed
    dom = parse(render_html(brief, article))
    checks = next(ul for ul in dom.by_id("summary").find_all("ul") if ul.has_class("first-checks"))
    items = checks.find_all("li")
    assert 1 <= len(items) <= FIRST_CHECKS
    by_id = {r["id"]: r for c in brief["claims"] for r in c["rebuttals"]}
    strongest = max(brief["synthesis"]["strongest_rebuttals"], key=lambda rid: by_id[rid]["strength"])
    (link,) = items[0].find_all("a")
    assert link.attrs["href"] == f"#rebuttal-{strongest}" and by_id[strongest]["what_to_check"][0] in items[0].text()
    leads = [li.text() for li in items]
    assert len(set(leads)) == len(leads), "no lead twice"


def test_the_views_are_css_switches_before_the_cards(seed: tuple[dict[str, Any], str]) -> None:
    brief, article = seed
    html = render_html(brief, article)
    dom = parse(html)
    for switch in ("only-check-worthy", "only-strongest"):
        box = dom.by_id(switch)
        assert box.tag == "input" and box.attrs["type"] == "checkbox"
        assert dom.find_all("label", **{"for": switch})
        assert html.index(f'id="{switch}"') < html.index('class="layout"'), "a sibling before what it filters"
        assert f"#{switch}:checked ~ .layout" in html
    for claim in brief["claims"]:
        assert dom.by_id(f"claim-{claim['id']}").has_class("check-worthy") == claim["check_worthy"]
    assert any(c["check_worthy"] for c in brief["claims"]) and not all(c["check_worthy"] for c in brief["claims"])
    assert not dom.find_all("script")


def test_a_brief_without_synthesis_says_so_in_the_summary(seed: tuple[dict[str, Any], str]) -> None:
    brief, article = seed
    failed = copy.deepcopy(brief)
    failed["synthesis"].update(
        status="failed", error={"kind": "invalid", "message": "bad"}, counter_thesis=None, strongest_rebuttals=[]
    )
    summary = parse(render_html(failed, article)).by_id("summary").text()
    assert "No strongest rebuttals: the synthesis is failed" in summary
