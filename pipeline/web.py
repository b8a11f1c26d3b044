"""Articles from the web: a saved HTML page or an http(s) URL, turned into an Article.

A URL is fetched by fetch.py; extract.py finds the article's paragraphs. The extracted text goes
through `article.from_text`, so it is normalised exactly like a text file and is the reference for
every quote offset; the page's HTML is kept beside it. Which sources are HTML or URLs is decided in sources.py.
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
from .extract import article_paragraphs
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
    paragraphs, document = article_paragraphs(html, url)
    words = sum(count_words(paragraph) for paragraph in paragraphs)
    if words < MIN_WORDS:
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
        title=document.title if document else None,
        author=document.author if document else None,
        date=document.date if document else None,
        site=document.sitename if document else None,
        url=(document.url if document else None) or url,
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
