"""The article's paragraphs in an HTML page: trafilatura first, readability-lxml as a second opinion.

trafilatura (precision mode, tables kept) decides what the article is. It sometimes drops a
paragraph inside the article, such as text written straight into a <div> between <br> tags;
readability keeps the page's main block whole. So a paragraph readability holds *between* two
paragraphs trafilatura kept, and that is a sentence rather than a caption or a button (at least
RECOVER_MIN_WORDS words), is put back in its place. When trafilatura finds less than an article,
readability's main block is used if it is one (a page that holds none is still refused by the
caller). Measured in bench/bench_extraction.py.
"""

from __future__ import annotations

import re
from typing import Any

from .article import MIN_WORDS, count_words

# A dropped paragraph is a sentence or more; captions and link labels are shorter.
RECOVER_MIN_WORDS = 10
_BLOCK_TAGS = (
    "p",
    "div",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "tr",
    "section",
    "article",
    "figure",
)


def article_paragraphs(html: str, url: str | None) -> tuple[list[str], Any]:
    """(the article's paragraphs, trafilatura's document with the page's metadata, or None)."""
    import trafilatura  # imported here: it takes a third of a second and only HTML input needs it

    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        favor_precision=True,
        include_comments=False,
        include_tables=True,  # tables hold an article's figures
        include_images=False,
        include_links=False,
        include_formatting=False,
        # Only dates the page states in its markup: a date guessed from free text could be an
        # event's, and the synthesis weighs the article's date against the model's knowledge.
        date_extraction_params={"original_date": True, "extensive_search": False},
    )
    assert not isinstance(document, dict), "trafilatura returns a dict only with as_dict=True"
    text = document.text if document is not None else ""
    paragraphs = [line.strip() for line in (text or "").split("\n") if line.strip()]
    main = main_block(html)
    if _words(paragraphs) < MIN_WORDS:
        return (main if _words(main) >= MIN_WORDS else paragraphs), document
    return with_dropped_paragraphs(paragraphs, main), document


def main_block(html: str) -> list[str]:
    """The lines of the page's main block as readability-lxml finds it (empty if it finds none)."""
    import lxml.etree
    import lxml.html
    from readability import Document  # imported here: only HTML input needs it
    from readability.readability import Unparseable

    try:
        summary = Document(html).summary(html_partial=True)
    except (Unparseable, lxml.etree.ParserError, ValueError, TypeError):
        return []
    if not summary.strip():
        return []
    root = lxml.html.fromstring(summary)
    # A caption (or a teaser laid out as one) is not article text; left in, it would also run into
    # the paragraph after it, which then no longer matches the one trafilatura kept.
    for caption in root.xpath("//figcaption"):
        caption.drop_tree()
    for element in root.iter("br"):
        element.tail = "\n" + (element.tail or "")
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")
    return [" ".join(line.split()) for line in root.text_content().split("\n") if line.strip()]


def with_dropped_paragraphs(paragraphs: list[str], main: list[str]) -> list[str]:
    """`paragraphs` with the sentence-long lines of `main` that sit between two of them put back.

    A line of `main` that is part of a kept paragraph (readability may break a paragraph at a
    link) is not missing: it anchors what follows it."""
    result = list(paragraphs)
    found = [index for index, line in enumerate(main) if _holder(result, line) is not None]
    if len(found) < 2:
        return result
    at: int | None = None
    for line in main[found[0] : found[-1] + 1]:
        holder = _holder(result, line)
        if holder is not None:
            at = holder
        elif count_words(line) >= RECOVER_MIN_WORDS and at is not None:
            at += 1
            result.insert(at, line)
    return result


def _holder(paragraphs: list[str], line: str) -> int | None:
    """The index of the paragraph that holds `line`, or None."""
    key = _key(line)
    if not key:
        return None
    return next((index for index, paragraph in enumerate(paragraphs) if key in _key(paragraph)), None)


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _words(paragraphs: list[str]) -> int:
    return sum(count_words(paragraph) for paragraph in paragraphs)
