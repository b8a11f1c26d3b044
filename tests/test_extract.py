"""How the HTML extractor combines trafilatura with readability-lxml (pipeline/extract.py)."""

from __future__ import annotations

from pipeline import extract, web

from .conftest import ROOT

KEPT = [
    "The council voted on Tuesday to fund the new library after a long and heated public debate.",
    "Opponents said the money would be better spent on roads, and they promised to keep fighting.",
    "The mayor said the vote settled the matter and that construction would begin in the spring.",
]
DROPPED = "Residents packed the chamber for hours, and more than forty of them asked to speak before the vote."


def test_a_sentence_dropped_between_kept_paragraphs_is_put_back_in_place() -> None:
    main = ["Menu", KEPT[0], "Photo: the chamber", KEPT[1], DROPPED, KEPT[2], "Read more stories like this one here"]
    assert extract.with_dropped_paragraphs(list(KEPT), main) == [KEPT[0], KEPT[1], DROPPED, KEPT[2]]


def test_lines_outside_the_article_or_part_of_a_kept_paragraph_are_not_added() -> None:
    fragment = "after a long and heated public debate."  # readability broke the paragraph at a link
    main = [DROPPED, KEPT[0], fragment, KEPT[1], KEPT[2], DROPPED + " Again."]
    assert extract.with_dropped_paragraphs(list(KEPT), main) == KEPT


def test_a_paragraph_trafilatura_drops_from_a_real_page_is_kept() -> None:
    """blog.python.org writes paragraphs as text between <br> tags, and trafilatura alone drops one."""
    import trafilatura

    html = (ROOT / "bench" / "extraction" / "pages" / "blog.python.org.html").read_text("utf-8")
    dropped = "Maintenance releases for the 3.6 series will follow at regular intervals"
    assert dropped not in trafilatura.extract(html, favor_precision=True, include_tables=True)
    text = web.from_html(html, "blog.python.org.html").text
    assert dropped in text
    assert text.index("You can download Python 3.6.0") < text.index(dropped) < text.index("We hope you enjoy")
    assert "Python-Dev Blogs" not in text and "Contributors" not in text


def test_a_page_without_an_article_has_no_main_block_worth_using() -> None:
    html = (ROOT / "tests" / "data" / "web" / "no-article.html").read_text("utf-8")
    assert sum(len(line.split()) for line in extract.main_block(html)) < 40
