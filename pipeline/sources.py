"""Which reader an article source goes to: an http(s) URL, an HTML file, a Word (.docx) or PDF
document, or a text or Markdown file (a path, or '-' for stdin), each read within a byte bound.

Text goes to article.py, HTML to web.py (which fetches URLs through fetch.py), documents to
docx_reader.py and pdf_reader.py; those modules do not know about each other's inputs, and
article.py imports none of them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import IO

from . import docx_reader, pdf_reader, web
from .article import DEFAULT_MAX_CHARS, Article, decode, from_text, refuse_binary
from .defaults import DOCUMENT_MAX_BYTES
from .errors import InputError
from .fetch import DEFAULT_MAX_BYTES, FetchOptions

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A document that opens like HTML, after an optional UTF-8 BOM, whitespace and comments.
_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE | re.DOTALL
)


def is_url(source: str) -> bool:
    """Anything with a scheme is treated as a URL, so file:// and ftp:// are refused, not read."""
    return bool(_SCHEME.match(source))


def is_html(name: str, raw: bytes) -> bool:
    return name.lower().endswith(HTML_SUFFIXES) or bool(_HTML_START.match(raw[:4096]))


def document_kind(name: str, raw: bytes) -> str | None:
    """The kind, "pdf" or "docx", of a document one of the readers takes (by content, else by extension:
    a password-protected .docx is no ZIP), else None. A .pdf that is no PDF is an InputError."""
    if raw.startswith(pdf_reader.PDF_SIGNATURE):
        return "pdf"
    if name.lower().endswith(".pdf"):  # the format allows a little junk before the signature
        if pdf_reader.PDF_SIGNATURE in raw[:1024]:
            return "pdf"
        raise InputError(
            f"{name} is named .pdf but is not a PDF (it does not start with %PDF); "
            "give the real PDF, or rename the file to what it is (.txt, .html)"
        )
    if docx_reader.is_docx(raw) or (
        name.lower().endswith(".docx") and raw.startswith((b"PK", docx_reader.OLE_SIGNATURE))
    ):
        return "docx"
    return None


def byte_limit(max_chars: int) -> int:
    """The most bytes `max_chars` characters can take: 4 each (UTF-8 at worst, UTF-32) plus a BOM."""
    return 4 * max_chars + 4


def load(
    source: str,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    truncate: bool = False,
    encoding: str | None = None,
    fetch: FetchOptions | None = None,
) -> Article:
    """Read a text, Markdown, HTML, .docx or PDF file, '-' for stdin, or an http(s) URL into an Article.

    HTML (by extension, or by how the content opens) goes through the article extractor in web.py,
    a .docx or PDF through its reader. At most `byte_limit(max_chars)` bytes are read (an HTML page:
    up to fetch.DEFAULT_MAX_BYTES; a document: defaults.DOCUMENT_MAX_BYTES); a longer input is
    refused, or with `truncate` cut there (a document is refused: its text cannot be cut unread).
    """
    if is_url(source):
        return web.load_url(source, fetch or FetchOptions(), max_chars=max_chars, truncate=truncate, encoding=encoding)
    limit = byte_limit(max_chars)
    html_limit = max(limit, DEFAULT_MAX_BYTES)
    name, raw = read_source(source, limit, html_limit)
    kind = document_kind(name, raw)
    if kind is not None:
        return _load_document(kind, name, raw, max_chars=max_chars, truncate=truncate)
    html = is_html(name, raw)
    bound = html_limit if html else limit
    cut = len(raw) > bound
    if cut:
        refuse_binary(raw, name)
        if not truncate:
            raise InputError(
                f"{name} is over {bound:,} bytes, more than --max-chars {max_chars:,} characters "
                "can take; raise --max-chars or pass --truncate"
            )
        raw = raw[:bound]
    if html:
        return web.from_html(
            web.decode_html(raw, name, encoding=encoding, partial=cut),
            name,
            max_chars=max_chars,
            truncate=truncate,
            truncated=cut,
        )
    return from_text(
        decode(raw, name, encoding=encoding, partial=cut), name, max_chars=max_chars, truncate=truncate, truncated=cut
    )


def _load_document(kind: str, name: str, raw: bytes, *, max_chars: int, truncate: bool) -> Article:
    if len(raw) > DOCUMENT_MAX_BYTES:
        raise InputError(
            f"{name} is over {DOCUMENT_MAX_BYTES:,} bytes, too large a document to read; "
            "save the article's text to a file and pass that"
        )
    reader = pdf_reader.from_pdf if kind == "pdf" else docx_reader.from_docx
    return reader(raw, name, max_chars=max_chars, truncate=truncate)


def read_source(source: str, limit: int, html_limit: int | None = None) -> tuple[str, bytes]:
    """Return (display name, raw bytes) for a path or '-' (stdin), reading at most `limit` + 1 bytes
    (`html_limit` + 1 for an HTML page, whose markup outweighs its text): one byte more than the
    limit says the input is longer, without reading an endless one whole."""
    if source == "-":
        if sys.stdin is None:  # started with file descriptor 0 closed (`counterpoint run - <&-`)
            raise InputError("stdin is closed; pipe the article in (counterpoint run - < article.txt) or give its path")
        return "<stdin>", _read_bounded(sys.stdin.buffer, "<stdin>", limit, html_limit)
    path = Path(source).expanduser()
    try:
        with path.open("rb") as stream:
            return str(path), _read_bounded(stream, str(path), limit, html_limit)
    except FileNotFoundError:
        raise InputError(f"no such file: {source}; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{source} is a directory; give the path of an article file") from None
    except PermissionError:
        raise InputError(f"cannot read {source}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from None


def _read_bounded(stream: IO[bytes], name: str, limit: int, html_limit: int | None) -> bytes:
    raw = stream.read(limit + 1)
    if len(raw) > limit and document_kind(name, raw) is not None:
        raw += stream.read(DOCUMENT_MAX_BYTES + 1 - len(raw))  # one byte over says it is too large
    elif len(raw) > limit and html_limit is not None and html_limit > limit and is_html(name, raw):
        raw += stream.read(html_limit - limit)
    return raw
