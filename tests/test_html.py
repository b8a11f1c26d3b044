"""brief.html: written by every run, self-contained, quotes highlighted and linked, text never markup."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.brief import Brief
from pipeline.brief.html import TEMPLATE, Highlight, article_paragraphs, paragraph_bounds, render_html
from pipeline.testing import FakeResponse

from . import hostile
from .conftest import ROOT, SEED, read_brief
from .htmltree import Node, parse

# Every tag the template writes; anything else in a page was injected.
TEMPLATE_TAGS = {"#document"} | {
    tag
    for name in (TEMPLATE, "summary.html.j2")
    for tag in re.findall(r"<([a-z][a-z0-9]*)", (ROOT / "templates" / name).read_text())
}


def page_of(run_dir: Path) -> tuple[str, Node, dict[str, Any], str]:
    html = (run_dir / "brief.html").read_text(encoding="utf-8")
    brief = read_brief(run_dir)
    return html, parse(html), brief, (run_dir / "article.txt").read_text(encoding="utf-8")


def visible_article(node: Node) -> str:
    """A paragraph's text as read, without the small C1/Rh1 labels on the marks."""
    return "".join(
        child if isinstance(child, str) else ("" if child.has_class("tag") else visible_article(child))
        for child in node.children
    )


def assert_self_contained(html: str, dom: Node, allowed_external: set[str] = frozenset()) -> None:
    """Nothing that would make a request or run code: no scripts, no remote resources."""
    assert {node.tag for node in dom.iter()} <= TEMPLATE_TAGS
    assert not dom.find_all("script") and not dom.find_all("link") and not dom.find_all("img")
    for node in dom.iter():
        assert "src" not in node.attrs, node
        assert not any(name.startswith("on") for name in node.attrs), node
        href = node.attrs.get("href")
        if href is not None:
            assert href.startswith("#") or href in allowed_external, href
    style = "".join(node.text() for node in dom.find_all("style"))
    assert "@import" not in style and "url(" not in style
    assert dom.find_all("meta", name="viewport"), "no viewport meta: unreadable on a phone"


def test_seed_run_writes_a_linked_self_contained_page(cli) -> None:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    html, dom, brief, article = page_of(result.run_dir)
    assert_self_contained(html, dom)
    assert dom.find_all("title")[0].text() == f"Counterpoint brief: {brief['article']['title']}"

    # The article, paragraph by paragraph, reads exactly as article.txt.
    paragraphs = dom.find_all("div", **{"class": "article-text"})[0].find_all("p")
    assert [visible_article(p) for p in paragraphs] == [article[s:e] for s, e in paragraph_bounds(article)]

    for claim in brief["claims"]:
        mark = dom.by_id(f"quote-{claim['id']}")
        assert mark.tag == "mark" and mark.has_class("hl-claim")
        assert claim["quote"].startswith(visible_article(mark)), "the mark's first piece starts the quote"
        assert mark.find_all("a", href=f"#claim-{claim['id']}"), "the quote links to its card"
        card = dom.by_id(f"claim-{claim['id']}")
        assert card.tag == "article" and claim["text"] in card.text()
        assert card.find_all("a", href=f"#quote-{claim['id']}"), "the card links back to its quote"
        shown = [li.attrs["id"] for li in card.find_all("li") if li.attrs.get("id", "").startswith("rebuttal-")]
        expected = sorted(claim["rebuttals"], key=lambda r: -r["strength"])
        assert shown == [f"rebuttal-{r['id']}" for r in expected], "rebuttals strongest first"
        for rebuttal in expected:
            item = dom.by_id(f"rebuttal-{rebuttal['id']}")
            assert item.find_all("span", role="img", **{"aria-label": f"strength {rebuttal['strength']} of 5"})
            assert (
                len([pip for pip in item.find_all("span") if pip.has_class("pip") and pip.has_class("on")])
                == rebuttal["strength"]
            )
            assert rebuttal["type"] in item.text()
            assert all(lead in item.text() for lead in rebuttal["what_to_check"])
        assert all(m["point"] in card.text() and m["why_it_matters"] in card.text() for m in claim["missing_context"])
        assert claim["steelman"] in card.text()

    synthesis = brief["synthesis"]
    section = dom.by_id("summary")
    for rebuttal_id in synthesis["strongest_rebuttals"]:
        assert section.find_all("a", href=f"#rebuttal-{rebuttal_id}")
    for number in range(1, len(synthesis["rhetoric"]) + 1):
        assert dom.by_id(f"quote-rh{number}").has_class("hl-rhetoric")
        assert dom.by_id(f"rhetoric-{number}").find_all("a", href=f"#quote-rh{number}")
    text = dom.text()
    for line in [synthesis["counter_thesis"], *synthesis["open_questions"], *synthesis["caveats"], *brief["notes"]]:
        assert line in text
    header = dom.find_all("header")[0].text()
    for value in (brief["run"]["model"], brief["run"]["created"], brief["status"], brief["article"]["author"]):
        assert value in header


def test_failed_refused_and_skipped_units_are_marked(cli, server) -> None:
    server.script("C3", FakeResponse(content=None, refusal="I can't help with that."))
    server.script("C5", *["not json"] * 3)
    server.script("synthesize", *["not json"] * 3)
    result = cli("run", str(SEED))
    assert result.exit_code == 3, result.stderr
    _, dom, _brief, _ = page_of(result.run_dir)
    refused, failed = dom.by_id("claim-C3"), dom.by_id("claim-C5")
    assert refused.has_class("st-refused") and "REFUSED: the model declined" in refused.text()
    assert failed.has_class("st-failed") and "FAILED (invalid): no valid output" in failed.text()
    for card in (refused, failed):
        assert not card.find_all("ol"), "no rebuttals shown for a claim that was not analysed"
    assert dom.by_id("quote-C3").has_class("st-refused"), "the quote of a refused claim is marked in the article"
    assert "claim not analysed" in dom.find_all("p", **{"class": "legend"})[0].text()
    synthesis = dom.by_id("synthesis")
    assert "FAILED (invalid)" in synthesis.text() and not synthesis.find_all("ol")
    assert "partial" in dom.find_all("header")[0].text()


def test_claims_a_stopped_run_never_reached_are_marked_skipped(cli, server, runs_dir: Path) -> None:
    server.script("C2", FakeResponse(status=401))
    result = cli("run", str(SEED), "--concurrency", "1")
    assert result.exit_code == 1, result.stderr
    (run_dir,) = runs_dir.iterdir()  # a fatal error prints no path, but the partial brief is written
    _, dom, brief, _ = page_of(run_dir)
    skipped = [c["id"] for c in brief["claims"] if (c["error"] or {}).get("kind") == "skipped"]
    assert skipped
    for claim_id in skipped:
        card = dom.by_id(f"claim-{claim_id}")
        assert card.has_class("st-skipped") and "SKIPPED: not analysed: the run stopped early" in card.text()
    assert dom.by_id("claim-C1").has_class("st-ok")
    markdown = (run_dir / "brief.md").read_text(encoding="utf-8")
    assert markdown.count("**SKIPPED** (skipped): not analysed") == len(skipped), "one status word in every renderer"
    assert "**FAILED** (skipped)" not in markdown


def test_hostile_article_and_model_text_stays_text(runs_dir: Path) -> None:
    run_dir = hostile.write_hostile_run(runs_dir)
    html, dom, brief, _ = page_of(run_dir)
    assert_self_contained(html, dom)  # no script, img, on* attribute or javascript: href got through
    assert "<script>document" not in html and "<img src=x" not in html and '<a href="javascript' not in html
    text = dom.text()
    for payload in hostile.PAYLOADS:
        assert text.count(payload) >= 3, payload  # shown literally: article, model text, metadata
    assert hostile.JS_URL in dom.find_all("p", **{"class": "source"})[0].text(), "the URL is shown as text"
    # The overlapping rhetoric quote nests inside or beside C1's mark, and both keep their ids.
    assert dom.by_id("quote-C1").has_class("hl-claim") and dom.by_id("quote-rh1").has_class("hl-rhetoric")
    assert brief["article"]["url"] == hostile.JS_URL


@pytest.mark.parametrize(
    "url,linked",
    [
        ("https://example.com/opinion?id=1", True),
        ("http://example.com/a", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,hi", False),
        ("example.com/a", False),
    ],
)
def test_only_a_web_url_becomes_a_link(cli, url: str, linked: bool) -> None:
    result = cli("run", str(SEED))
    _, _, brief, article = page_of(result.run_dir)
    brief["article"].update(url=url, site="Example Daily", date="2016-03-15")
    dom = parse(render_html(brief, article))
    source = dom.find_all("p", **{"class": "source"})[0]
    assert source.text() == url
    assert [a.attrs["href"] for a in source.find_all("a")] == ([url] if linked else [])
    byline = dom.find_all("p", **{"class": "byline"})[0].text()
    assert "Example Daily" in byline and "2016-03-15" in byline


def coverage_from_tokens(paragraphs) -> dict[int, set[str]]:
    """Which marks cover each character, reconstructed from the tokens as a browser would nest them."""
    covered: dict[int, set[str]] = {}
    text_positions = iter(range(10**6))
    for tokens in paragraphs:
        stack: list[str] = []
        for token in tokens:
            if token.kind == "open":
                stack.append(token.mark.label)
            elif token.kind == "close":
                stack.pop()
            else:
                for _ in token.text:
                    covered[next(text_positions)] = set(stack)
        assert stack == [], "every paragraph closes what it opens"
    return covered


def test_overlapping_nested_and_cross_paragraph_quotes_nest_cleanly() -> None:
    text = "alpha beta gamma delta\n\nepsilon zeta eta"
    spans = {"A": (0, 10), "B": (6, 16), "C": (6, 10), "D": (11, 30), "E": (0, 10), "X": (35, 99)}
    marks = [
        Highlight("claim", label, start, end, f"quote-{label}", f"claim-{label}", "ok")
        for label, (start, end) in spans.items()
    ]
    paragraphs = article_paragraphs(text, marks)
    bounds = paragraph_bounds(text)
    assert ["".join(t.text for t in tokens if t.kind == "text") for tokens in paragraphs] == [
        text[s:e] for s, e in bounds
    ]
    offsets = [i for s, e in bounds for i in range(s, e)]
    covered = coverage_from_tokens(paragraphs)
    for index, offset in enumerate(offsets):
        expected = {label for label, (start, end) in spans.items() if start <= offset < end and end <= len(text)}
        assert covered[index] == expected, (offset, text[offset])
    firsts = [t.mark.label for tokens in paragraphs for t in tokens if t.kind == "open" and t.first]
    assert sorted(firsts) == ["A", "B", "C", "D", "E"], "one id per mark; out-of-range spans are dropped"


def test_a_quote_whose_offsets_do_not_hold_it_is_not_highlighted(cli) -> None:
    result = cli("run", str(SEED))
    _, _, brief, article = page_of(result.run_dir)
    brief["claims"][0]["start"] += 3  # a stale brief: the offsets now point at other words
    dom = parse(render_html(brief, article))
    assert not [n for n in dom.iter() if n.attrs.get("id") == "quote-C1"]
    assert not dom.by_id("claim-C1").find_all("a", href="#quote-C1")
    assert dom.by_id("quote-C2").tag == "mark"


def test_to_html_needs_the_article_text(cli) -> None:
    result = cli("run", str(SEED))
    brief = read_brief(result.run_dir)
    with pytest.raises(ValueError, match="article_text"):
        Brief.from_dict(brief).to_html()
    assert re.search(
        r'<mark class="hl-claim st-ok" id="quote-C1">',
        Brief.from_dict(brief, article_text=(result.run_dir / "article.txt").read_text()).to_html(),
    )
