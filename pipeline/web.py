"""Articles from the web: a saved HTML page or an http(s) URL, turned into an Article.

A URL is fetched by fetch.py. The extracted text goes through `article.from_text`, so it is
normalised exactly like a text file and is the reference for every quote offset; the page's HTML
is kept beside it. Which sources are HTML or URLs is decided in sources.py.
"""

from __future__ import annotations

import codecs
import re

from .article import (
    DEFAULT_MAX_CHARS,
    MIN_WORDS,
    Article,
    count_words,
    decode,
    from_text,
)
from .errors import FetchError, InputError
from .fetch import FetchOptions, fetch

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
_UNICODE_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Browsers read these labels as Windows-1252 (WHATWG Encoding), and pages rely on it for quotes.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}


# -- extraction -------------------------------------------------------------------------------


def decode_html(
    raw: bytes, name: str, *, declared: str | None = None, encoding: str | None = None, partial: bool = False
) -> str:
    """--encoding, else a BOM, else the HTTP charset, else <meta charset>, else UTF-8/Windows-1252.

    `partial`: `raw` is the head of a longer page (see `article.decode`).
    """
    if encoding is None and not raw.startswith(_UNICODE_BOMS):
        for label in (declared, _meta_charset(raw)):
            codec = _codec(label)
            if codec is None:
                continue
            try:
                return codecs.getincrementaldecoder(codec)().decode(raw, final=not partial)
            except UnicodeDecodeError:
                break  # the page lies about its encoding: detect it instead
    return decode(raw, name, encoding=encoding, partial=partial)


def _meta_charset(raw: bytes) -> str | None:
    match = _META_CHARSET.search(raw[:4096])
    return match.group(1).decode("ascii") if match else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = _CHARSET_ALIASES.get(label.strip().lower(), label.strip())
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def from_html(
    html: str,
    source: str,
    *,
    url: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    truncate: bool = False,
    truncated: bool = False,
    error: type[InputError] = InputError,
) -> Article:
    """The article in a page, without navigation, ads, comments or footer, plus its metadata."""
    import trafilatura  # imported here: it takes a third of a second and only HTML input needs it

    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        favor_precision=True,
        include_comments=False,
        # Tables hold an article's figures (measured: a held-out page's recall went 0.82 -> 0.98;
        # bench/bench_extraction.py).
        include_tables=True,
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
    words = sum(count_words(paragraph) for paragraph in paragraphs)
    if document is None or words < MIN_WORDS:
        raise error(
            f"{source} holds no article that can be extracted ({words} words of article text, "
            f"at least {MIN_WORDS} needed); if it does show one, save its text to a file and pass that"
        )
    # Paragraphs separated by a blank line, as in a text article (and what --truncate cuts at).
    return from_text(
        "\n\n".join(paragraphs),
        source,
        max_chars=max_chars,
        truncate=truncate,
        truncated=truncated,
        title=document.title,
        author=document.author,
        date=document.date,
        site=document.sitename,
        url=document.url or url,
        html=html,
    )


def load_url(
    url: str,
    options: FetchOptions,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    truncate: bool = False,
    encoding: str | None = None,
) -> Article:
    page = fetch(url, options)
    html = decode_html(page.raw, url, declared=page.charset, encoding=encoding)
    return from_html(html, url, url=page.url, max_chars=max_chars, truncate=truncate, error=FetchError)
