"""Read an article from a file, stdin or a URL, decode and normalise it, and find quotes in it.

The normalised text is the reference for every quote offset in the brief.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from .web import FetchOptions

DEFAULT_MAX_CHARS = 60_000
MIN_WORDS = 40

# Magic numbers of formats people hand us by mistake, so the error can name them.
_BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or a .docx/.odt document)",
    b"\x1f\x8b": "a gzip archive",
}
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]
# "By Jane Doe" and its equivalents in the languages counterpoint is most used with.
_BYLINE = re.compile(r"^\s*(?:by|par|von|por|di|door|av|author:|auteur\s?:)\s+(?P<name>[^\n,|·•]{2,80}?)"
                     r"\s*(?:[,|·•].*)?$", re.IGNORECASE)
_BIO = re.compile(r"^(?P<name>(?:[A-Z][\w.'’-]*\s){1,3}[A-Z][\w.'’-]*) (?:is|was|writes|teaches)\b")
_DATE = re.compile(
    r"\b(\d{4}-\d{2}-\d{2}|(?:January|February|March|April|May|June|July|August|September|October"
    r"|November|December) \d{1,2}, \d{4}|\d{1,2} (?:January|February|March|April|May|June|July"
    r"|August|September|October|November|December) \d{4})\b"
)
_QUOTE_CHARS = {
    "'": "['‘’‛′]", "‘": "['‘’‛′]", "’": "['‘’‛′]",
    '"': "[\"“”„″]", "“": "[\"“”„″]", "”": "[\"“”„″]",
    "-": "[-‐‑–—]", "–": "[-‐‑–—]", "—": "[-‐‑–—]",
}


@dataclass(frozen=True)
class Article:
    text: str
    source: str
    title: str | None = None
    author: str | None = None
    date: str | None = None
    site: str | None = None
    url: str | None = None
    language: str | None = None
    truncated: bool = False
    html: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def word_count(self) -> int:
        return len(self.text.split())

    def metadata(self) -> dict[str, object]:
        return {
            "title": self.title, "author": self.author, "date": self.date, "site": self.site,
            "url": self.url, "source": self.source, "language": self.language, "sha256": self.sha256,
            "word_count": self.word_count, "char_count": len(self.text), "truncated": self.truncated,
        }


def read_source(source: str) -> tuple[str, bytes]:
    """Return (display name, raw bytes) for a path or '-' (stdin)."""
    if source == "-":
        if sys.stdin is None:  # started with file descriptor 0 closed (`counterpoint run - <&-`)
            raise InputError("stdin is closed; pipe the article in (counterpoint run - < article.txt) "
                             "or give its path")
        return "<stdin>", sys.stdin.buffer.read()
    path = Path(source).expanduser()
    try:
        return str(path), path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: {source}; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{source} is a directory; give the path of an article file") from None
    except PermissionError:
        raise InputError(f"cannot read {source}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from None


def decode(raw: bytes, name: str, *, encoding: str | None = None) -> str:
    """Decode bytes: an explicit encoding, else a BOM, else UTF-8, else Windows-1252."""
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}; use a name such as utf-8 or cp1252") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{name} is not valid {encoding} (byte {exc.start}); check --encoding") from None
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(codec)
            except UnicodeDecodeError:
                raise InputError(f"{name} starts with a {codec} byte-order mark but is not valid {codec}") from None
    for signature, what in _BINARY_SIGNATURES.items():
        if raw.startswith(signature):
            raise InputError(f"{name} is {what}, not an article; give a text, Markdown or HTML file")
    if b"\x00" in raw:
        raise InputError(f"{name} contains NUL bytes, so it is binary, not text; give a text, Markdown or HTML file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        raise InputError(
            f"{name} is neither UTF-8 nor Windows-1252 text; convert it to UTF-8 or pass --encoding"
        ) from None


def normalise(text: str) -> str:
    """One line-ending convention and no stray BOM; the result is the offset reference."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _control_share(text: str) -> float:
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\t")
    return controls / max(len(text), 1)


def from_text(
    text: str,
    source: str = "<text>",
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    truncate: bool = False,
    **metadata: str | None,
) -> Article:
    """Build an Article from already-decoded text: normalise, check size, find metadata."""
    text = normalise(text)
    if not text.strip():
        raise InputError(f"{source} is empty; give an article with text in it")
    if _control_share(text) > 0.01:
        raise InputError(f"{source} looks like binary data, not text; give a text, Markdown or HTML file")
    truncated = False
    if len(text) > max_chars:
        if not truncate:
            raise InputError(
                f"{source} has {len(text):,} characters, over the limit of {max_chars:,}; "
                "raise --max-chars or pass --truncate"
            )
        text, truncated = _cut(text, max_chars), True
    words = len(text.split())
    if words < MIN_WORDS:
        raise InputError(
            f"{source} has only {words} words; counterpoint needs an article of at least {MIN_WORDS} words"
        )
    found = _find_metadata(text)
    found.update({key: value for key, value in metadata.items() if value})
    return Article(text=text, source=source, truncated=truncated, **found)


def load(source: str, *, max_chars: int = DEFAULT_MAX_CHARS, truncate: bool = False,
         encoding: str | None = None, fetch: FetchOptions | None = None) -> Article:
    """Read a text, Markdown or HTML file, '-' for stdin, or an http(s) URL into an Article.

    HTML (by extension, or by how the content opens) goes through the article extractor in web.py.
    """
    from . import web  # imported here: web imports this module

    if web.is_url(source):
        return web.load_url(source, fetch or web.FetchOptions(), max_chars=max_chars, truncate=truncate,
                            encoding=encoding)
    name, raw = read_source(source)
    if web.is_html(name, raw):
        return web.from_html(web.decode_html(raw, name, encoding=encoding), name, max_chars=max_chars,
                             truncate=truncate)
    return from_text(decode(raw, name, encoding=encoding), name, max_chars=max_chars, truncate=truncate)


def _cut(text: str, max_chars: int) -> str:
    """Cut at the last paragraph (else sentence) boundary before max_chars."""
    head = text[:max_chars]
    for boundary in ("\n\n", ". "):
        at = head.rfind(boundary)
        if at > max_chars // 2:
            return head[: at + (1 if boundary == ". " else 0)].rstrip()
    return head.rstrip()


def _find_metadata(text: str) -> dict[str, str | None]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    found: dict[str, str | None] = {"title": None, "author": None, "date": None}
    first = lines[0].lstrip("#").strip() if lines else ""
    if first and len(first) <= 200 and len(first.split()) <= 30 and not first.endswith((".", ":", ";")):
        found["title"] = first
    for line in lines[1:6]:
        byline = _BYLINE.match(line)
        if byline and not found["author"]:
            found["author"] = byline.group("name").strip()
        date = _DATE.search(line)
        if date and not found["date"] and len(line) < 80:
            found["date"] = date.group(1)
    if not found["author"] and lines:
        bio = _BIO.match(lines[-1])
        if bio and len(lines[-1]) < 300:
            found["author"] = bio.group("name")
    return found


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """Find `quote` in `text`, allowing only whitespace and typographic quote/dash variants.

    Returns the (start, end) offsets of the match in `text`, or None.
    """
    tokens = quote.split()
    if not tokens:
        return None
    pattern = r"\s+".join("".join(_QUOTE_CHARS.get(ch, re.escape(ch)) for ch in token) for token in tokens)
    match = re.search(pattern, text)
    return (match.start(), match.end()) if match else None


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+|\n+")


def sentences(text: str, *, min_chars: int = 20) -> list[str]:
    """The article's sentences (and sentence-like lines), each an exact substring of `text`.

    Used as the only allowed quotes when a local server constrains decoding to a schema.
    """
    found: list[str] = []
    for piece in _SENTENCE_END.split(text):
        piece = piece.strip()
        if len(piece) >= min_chars and piece not in found:
            found.append(piece)
    return found
