"""PDF documents turned into an Article through pdfminer.six's layout analysis.

A PDF holds positioned lines, not paragraphs, so the text is rebuilt: lines repeated at the top
or bottom of several pages (running headers and footers) and bare page numbers are dropped,
paragraphs are rebuilt from vertical gaps, first-line indents and short last lines (and carried
across page breaks), and words hyphenated at a line end are joined again. The result goes through
`article.from_text` like any other input.
"""

from __future__ import annotations

import io
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .article import DEFAULT_MAX_CHARS, MIN_WORDS, Article, count_words, from_text
from .errors import InputError

PDF_SIGNATURE = b"%PDF"
# Lines that are only a page number: "3", "- 3 -", "Page 3", "Page 3 of 9", "3 / 9", "iv".
_PAGE_NUMBER = re.compile(
    r"^[-–—(\[]*\s*(?:page\s+)?(?:\d{1,4}|[ivxlc]{1,6})(?:\s*(?:/|of)\s*\d{1,4})?\s*[-–—)\]]*$", re.I
)
_EDGE_LINES = 3  # how many lines at a page's top and bottom may be a running header or footer
_SENTENCE_END = (".", "!", "?", ":", '"', "”", "’", "'", ")")


@dataclass(frozen=True)
class _Line:
    text: str
    x0: float
    x1: float
    top: float  # distance from the page's top edge
    bottom: float
    size: float  # the median character height


def from_pdf(raw: bytes, source: str, *, max_chars: int = DEFAULT_MAX_CHARS, truncate: bool = False) -> Article:
    """The article in a PDF's text layer, its paragraphs rebuilt."""
    pages, info = _read(raw, source)
    pages = _without_running_lines(pages)
    lines = [line for page in pages for line in page]
    if count_words(" ".join(line.text for line in lines)) < MIN_WORDS:
        raise InputError(
            f"{source} has no text layer to read (a scanned PDF?); run OCR on it (for example ocrmypdf) "
            "or save its text to a file and pass that"
        )
    paragraphs = _paragraphs(pages)
    text = "\n\n".join(_join_lines(paragraph) for paragraph in paragraphs)
    return from_text(
        _dehyphenate_check(text),
        source,
        max_chars=max_chars,
        truncate=truncate,
        title=info.get("Title") or _first_heading(pages),
        author=info.get("Author"),
    )


def _read(raw: bytes, source: str) -> tuple[list[list[_Line]], dict[str, str]]:
    """Each page's text lines, top to bottom, and the document's Title and Author properties."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psparser import PSException

    try:
        pages = [_page_lines(page) for page in extract_pages(io.BytesIO(raw), laparams=LAParams())]
        info = _info(raw)
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise InputError(
            f"{source} is encrypted (password-protected); save an unprotected copy or its text and pass that"
        ) from None
    except (PDFSyntaxError, PSException, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise InputError(
            f"{source} is not a readable PDF ({type(exc).__name__}: damaged or cut short); "
            "save it again from the program that made it, or save its text to a file and pass that"
        ) from None
    if not pages:
        raise InputError(f"{source} is a PDF with no pages; give the PDF that holds the article")
    return pages, info


def _page_lines(page: Any) -> list[_Line]:
    from pdfminer.layout import LTChar, LTTextContainer, LTTextLine

    found: list[_Line] = []
    for box in page:
        if not isinstance(box, LTTextContainer):
            continue
        for line in box if not isinstance(box, LTTextLine) else [box]:
            if not isinstance(line, LTTextLine):
                continue
            text = " ".join(line.get_text().split())
            if not text:
                continue
            sizes = [char.size for char in line if isinstance(char, LTChar)] or [line.height]
            found.append(
                _Line(text, line.x0, line.x1, page.height - line.y1, page.height - line.y0, statistics.median(sizes))
            )
    return sorted(found, key=lambda line: (round(line.top), line.x0))


def _info(raw: bytes) -> dict[str, str]:
    """The document information dictionary's Title and Author, when they are set."""
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import resolve1
    from pdfminer.utils import decode_text

    document = PDFDocument(PDFParser(io.BytesIO(raw)))
    found: dict[str, str] = {}
    for entry in document.info:
        for key in ("Title", "Author"):
            value = resolve1(entry.get(key))
            if isinstance(value, bytes):
                value = decode_text(value)
            if isinstance(value, str) and value.strip() and key not in found:
                found[key] = " ".join(value.split())
    return found


def _first_heading(pages: list[list[_Line]]) -> str | None:
    """The large-type lines that open the first page (a PDF without a Title property)."""
    body = statistics.median(line.size for page in pages for line in page)
    heading: list[str] = []
    for line in next((page for page in pages if page), []):
        if line.size <= body * 1.15:
            break
        heading.append(line.text)
    return " ".join(heading) or None


def _shape(text: str) -> str:
    """A line with its numbers masked, so "Page 2 of 5" and "Page 3 of 5" repeat as one line."""
    return re.sub(r"\d+", "#", text.lower())


def _without_running_lines(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Drop bare page numbers and lines repeated at the top or bottom of several pages."""
    edges = Counter(
        shape for page in pages for shape in {_shape(line.text) for line in page[:_EDGE_LINES] + page[-_EDGE_LINES:]}
    )
    # On a long document, a body line can recur at a page edge by chance; a running line recurs often.
    least = 2 if len(pages) <= 3 else max(3, len(pages) / 2)
    repeated = {shape for shape, count in edges.items() if count >= least}
    kept: list[list[_Line]] = []
    for page in pages:
        edge = set(map(id, page[:_EDGE_LINES] + page[-_EDGE_LINES:]))
        kept.append(
            [
                line
                for line in page
                if not (id(line) in edge and (_shape(line.text) in repeated or _PAGE_NUMBER.match(line.text)))
            ]
        )
    return kept


def _paragraphs(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Group lines into paragraphs: a new one after a wide vertical gap, at a first-line indent or
    after a short line that ends a sentence; a paragraph runs on across a page break."""
    lines = [line for page in pages for line in page]
    left = statistics.median(line.x0 for line in lines)
    right = max(line.x1 for line in lines)
    size = statistics.median(line.size for line in lines)
    paragraphs: list[list[_Line]] = []
    for page in pages:
        previous: _Line | None = None
        for line in page:
            if not paragraphs or _starts_paragraph(line, previous, paragraphs[-1][-1], left, right, size):
                paragraphs.append([line])
            else:
                paragraphs[-1].append(line)
            previous = line
    return paragraphs


def _starts_paragraph(line: _Line, previous: _Line | None, last: _Line, left: float, right: float, size: float) -> bool:
    ended = last.text.endswith(_SENTENCE_END)
    if line.size > size * 1.15 or last.size > size * 1.15:  # a heading stands alone
        return line.size != last.size or previous is None or line.top - previous.bottom > size
    if line.x0 > left + size and line.x0 < left + 6 * size:  # first-line indent
        return True
    if previous is None:  # first line of a page: continues the last paragraph unless that ended
        return ended and last.x1 < right - 4 * size
    if line.top - previous.bottom > 0.9 * size:  # wider than the line spacing
        return True
    return ended and previous.x1 < right - 4 * size  # a short last line ending a sentence


def _join_lines(paragraph: list[_Line]) -> str:
    """A paragraph's lines as one line; a word hyphenated at a line end is marked for joining."""
    text = ""
    for line in paragraph:
        if not text:
            text = line.text
        elif re.search(r"[^\W\d_][-\u00ad]$", text) and line.text[:1].islower():
            text = text[:-1] + "\u0000" + line.text  # decided in _dehyphenate_check, with the whole text
        else:
            text += " " + line.text
    return text


def _dehyphenate_check(text: str) -> str:
    """Join words hyphenated at a line end ("differ-" + "ent"), but keep the hyphen of a compound
    the document spells with one elsewhere ("well-" + "known" where "well-known" occurs)."""

    def joined(match: re.Match[str]) -> str:
        head, tail = match.group(1), match.group(2)
        return f"{head}-{tail}" if f"{head}-{tail}".lower() in lowered else head + tail

    lowered = text.replace("\u0000", "").lower()
    return re.sub(r"(\w+)\u0000(\w+)", joined, text)
