"""The Article: decoding and normalising its text, its metadata, and finding quotes in it.

The normalised text is the reference for every quote offset in the brief. Reading a source (a
file, stdin, a URL) and choosing its reader is sources.py's; this module imports none of them.
"""

from __future__ import annotations

import codecs
import datetime
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

from .defaults import MAX_CHARS as DEFAULT_MAX_CHARS
from .errors import InputError

MIN_WORDS = 40

# Magic numbers of formats people hand us by mistake, so the error can name them.
_BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or an .odt/.xlsx document)",
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
_BYLINE = re.compile(
    r"^\s*(?:by|par|von|por|di|door|av|author:|auteur\s?:)\s+(?P<name>[^\n,|·•]{2,80}?)"
    r"\s*(?:[,|·•].*)?$",
    re.IGNORECASE,
)
# A closing bio names the author: "Jane Roe is a professor of ...", "Jane Roe writes about ...". A
# sentence that merely starts with a proper noun ("New York is paying for this") is not one.
_BIO = re.compile(
    r"^[*_—–-]*\s*(?P<name>(?:[A-Z][\w.'’-]*\s){1,3}[A-Z][\w.'’-]*),? (?:(?:is|was)\b(?P<role>.*)"
    r"|(?:writes|teaches|covers)\b)"
)
_BIO_ROLES = re.compile(
    r"\b(?:author|professor|fellow|writer|columnist|editor|director|journalist|lecturer|contributor|reporter"
    r"|founder|president|chair|economist|researcher|scholar|analyst|correspondent|member|head|dean|historian"
    r"|scientist|lawyer|attorney|physician|doctor|adviser|advisor|senator|representative|teacher|student"
    r"|vice|executive|officer|partner|manager|cofounder|co-founder)",
    re.IGNORECASE,
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTHS_SHORT = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
# The date forms articles print, each with the strptime format that reads it.
_DATE = re.compile(
    rf"(?<!\d)(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})(?!\d)"
    rf"|\b(?P<mdy>(?:{_MONTHS}|(?:{_MONTHS_SHORT})\.?) \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})\b"
    rf"|\b(?P<dmy>\d{{1,2}}(?:st|nd|rd|th)? (?:{_MONTHS}|(?:{_MONTHS_SHORT})\.?),? \d{{4}})\b"
)
# Quote matching folds these to one form on both sides (see `locate`).
_FOLD = {**dict.fromkeys("‘’‛′", "'"), **dict.fromkeys("“”„″", '"'), **dict.fromkeys("‐‑‒–—―", "-"), "…": "..."}
# Invisible characters an article may carry and a model drops when it copies a passage.
_INVISIBLE = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
# A quote grounds a claim when it has this many words (see `count_words`) or is a whole sentence.
MIN_QUOTE_WORDS = 4
# Han ideographs and kana: each counts as a word, as word processors count them (see `count_words`).
_CJK = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    r"\U00020000-\U0003134f]"
)
_SENTENCE_PUNCT = ".!?…。！？"
_CLOSERS = "\"'”’»)]」』）"
_OPENERS = "\"'“‘«([「『（"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Article:
    text: str
    source: str
    title: str | None = None
    author: str | None = None
    date: str | None = None  # ISO YYYY-MM-DD, or None
    site: str | None = None
    url: str | None = None
    language: str | None = None
    truncated: bool = False
    html: str | None = None
    date_text: str | None = None  # the date as the source wrote it ("January 14, 2015")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def word_count(self) -> int:
        return count_words(self.text)

    def metadata(self) -> dict[str, object]:
        return {
            "title": self.title,
            "author": self.author,
            "date": self.date,
            "date_text": self.date_text,
            "site": self.site,
            "url": self.url,
            "source": self.source,
            "language": self.language,
            "sha256": self.sha256,
            "word_count": self.word_count,
            "char_count": len(self.text),
            "truncated": self.truncated,
        }


def with_metadata(
    article: Article, *, title: str | None = None, author: str | None = None, date: str | None = None
) -> Article:
    """The article with the metadata a caller knows (a CMS, --title/--author/--date) in place of
    what detection found. `date` must be an ISO calendar date, YYYY-MM-DD."""
    given: dict[str, Any] = {}
    for name, value in (("title", title), ("author", author)):
        if value is not None:
            if not value.strip() or any(char in value for char in "\r\n"):
                raise InputError(f"the {name} {value!r} is empty or spans lines; give it on one line")
            given[name] = value.strip()
    if date is not None:
        given["date"] = iso_date(date)
        given["date_text"] = date
    return replace(article, **given) if given else article


def iso_date(value: str) -> str:
    """`value` checked as an ISO calendar date (YYYY-MM-DD) that exists."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"the date {value!r} is not a calendar date as YYYY-MM-DD; give it like 2015-01-14") from None


def refuse_binary(raw: bytes, name: str) -> None:
    for signature, what in _BINARY_SIGNATURES.items():
        if raw.startswith(signature):
            raise InputError(f"{name} is {what}, not an article; give a text, Markdown, HTML, .docx or PDF file")


def _decode(raw: bytes, codec: str, partial: bool) -> str:
    """Decode; input cut at a byte limit may end inside a character, which is dropped."""
    return codecs.getincrementaldecoder(codec)().decode(raw, final=not partial)


def decode(raw: bytes, name: str, *, encoding: str | None = None, partial: bool = False) -> str:
    """Decode bytes: an explicit encoding, else a BOM, else UTF-8, else Windows-1252.

    `partial`: `raw` is the head of a longer input, so a character cut at its end is not an error.
    """
    if encoding:
        try:
            return _decode(raw, encoding, partial)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}; use a name such as utf-8 or cp1252") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{name} is not valid {encoding} (byte {exc.start}); check --encoding") from None
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return _decode(raw[len(bom) :], codec, partial)
            except UnicodeDecodeError:
                raise InputError(f"{name} starts with a {codec} byte-order mark but is not valid {codec}") from None
    refuse_binary(raw, name)
    if b"\x00" in raw:
        raise InputError(f"{name} contains NUL bytes, so it is binary, not text; give a text, Markdown or HTML file")
    try:
        return _decode(raw, "utf-8", partial)
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


def count_words(text: str) -> int:
    """Words as a reader counts them. Chinese and Japanese put no spaces between words, so each Han
    or kana character counts as one word (as word processors count them); everything else, Korean
    included (it spaces its words), is counted by spaces. Punctuation alone ("—", "。") is no word."""
    spaced = _CJK.sub(" ", text).split()
    return len(_CJK.findall(text)) + sum(1 for token in spaced if any(ch.isalnum() for ch in token))


def from_text(
    text: str,
    source: str = "<text>",
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    truncate: bool = False,
    truncated: bool = False,
    **metadata: str | None,
) -> Article:
    """Build an Article from already-decoded text: normalise, check size, find metadata.

    `truncated`: the text is already the head of a longer input (cut at its byte limit).
    """
    text, front = _front_matter(normalise(text))
    if not text.strip():
        raise InputError(f"{source} is empty; give an article with text in it")
    if _control_share(text) > 0.01:
        raise InputError(f"{source} looks like binary data, not text; give a text, Markdown or HTML file")
    if len(text) > max_chars:
        if not truncate:
            raise InputError(
                f"{source} has {len(text):,} characters, over the limit of {max_chars:,}; "
                "raise --max-chars or pass --truncate"
            )
        text, truncated = _cut(text, max_chars), True
    words = count_words(text)
    if words < MIN_WORDS:
        raise InputError(
            f"{source} has only {words} words; counterpoint needs an article of at least {MIN_WORDS} words"
        )
    found = _find_metadata(text)
    found.update(front)
    found.update({key: value for key, value in metadata.items() if value})
    # The date as written stays in date_text; `date` is always ISO (or None).
    found["date_text"] = found.get("date_text") or found.get("date")
    found["date"] = parse_date(found.get("date"))
    return Article(text=text, source=source, truncated=truncated, **found)


def _front_matter(text: str) -> tuple[str, dict[str, str]]:
    """Split YAML front matter (`---` ... `---` at the top) off a Markdown article: (the rest, its
    title, author and date). A block that is not a YAML mapping is not front matter: the text is kept."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, {}
    import yaml  # imported here: only front matter needs it

    try:
        data = yaml.safe_load(match.group("yaml"))
    except (yaml.YAMLError, RecursionError):
        return text, {}
    if not isinstance(data, dict):
        return text, {}
    fields = {key: value for key in ("title", "author", "date") if (value := _front_value(data.get(key)))}
    return text[match.end() :].lstrip("\n"), fields


def _front_value(value: Any) -> str | None:
    if isinstance(value, datetime.date):  # YAML reads 2024-03-03 as a date (a datetime is one too)
        return value.isoformat()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):  # several authors
        return ", ".join(item.strip() for item in value) or None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def _cut(text: str, max_chars: int) -> str:
    """Cut at the last paragraph (else sentence) boundary before max_chars."""
    head = text[:max_chars]
    for boundary in ("\n\n", ". "):
        at = head.rfind(boundary)
        if at > max_chars // 2:
            return head[: at + (1 if boundary == ". " else 0)].rstrip()
    return head.rstrip()


def _find_metadata(text: str) -> dict[str, str | None]:
    lines = text.split("\n")
    filled = [index for index, line in enumerate(lines) if line.strip()]
    found: dict[str, str | None] = {"title": None, "author": None, "date": None}
    if not filled:
        return found
    first = lines[filled[0]].strip()
    if _is_title(first) or _headline_by_layout(lines, filled):
        found["title"] = first.lstrip("#").strip()
    for index in filled[1:6]:
        line = lines[index].strip()
        byline = _BYLINE.match(line)
        if byline and not found["author"]:
            found["author"] = byline.group("name").strip()
        date = _DATE.search(line)
        if date and not found["date"] and len(line) < 80:
            found["date"] = date.group(0)
    if not found["author"]:
        found["author"] = _bio_author(lines[filled[-1]].strip())
    return found


def _is_title(line: str) -> bool:
    """A first line reads as a title: a Markdown heading, or short, with words in it ("---" is not
    one), and no sentence end."""
    if re.match(r"#{1,6}\s+\w", line):
        return True
    return _short_line(line) and not line.endswith((".", ":", ";", "。", "：", "；"))


def _short_line(line: str) -> bool:
    return any(ch.isalnum() for ch in line) and len(line) <= 200 and count_words(line) <= 30


def _headline_by_layout(lines: list[str], filled: list[int]) -> bool:
    """A first line ending in "." is still the headline when the layout says so: it stands alone
    (a blank line after it) and a byline or a date follows. Headlines end in a full stop often
    enough ("Markets are not magic."); a first sentence alone is no headline."""
    first = lines[filled[0]].strip()
    if len(filled) < 2 or not _short_line(first) or first.endswith((":", ";", "：", "；")):
        return False
    if filled[1] != filled[0] + 2:  # no blank line between it and what follows
        return False
    following = lines[filled[1]].strip()
    return bool(_BYLINE.match(following) or (len(following) < 80 and _DATE.search(following)))


def _bio_author(line: str) -> str | None:
    """The author a closing bio names, or None when the last line is no bio."""
    bio = _BIO.match(line)
    if bio is None or len(line) >= 300:
        return None
    role = bio.group("role")
    # "is a professor of", "is vice president of", "is the author of": the role comes first.
    if role is not None and not _BIO_ROLES.search(" ".join(role.split()[:3])):
        return None
    return bio.group("name")


def parse_date(text: str | None) -> str | None:
    """The first date in `text` as ISO YYYY-MM-DD ("January 14, 2015", "14 Jan. 2015",
    "2015-01-14T09:00"), or None when it holds none that exists."""
    match = _DATE.search(text) if text else None
    if match is None:
        return None
    try:
        if match.group("iso"):
            return datetime.date.fromisoformat(match.group("iso")).isoformat()
        value = re.sub(r"(?<=\d)(?:st|nd|rd|th)\b|[.,]", "", match.group(0)).replace("Sept", "Sep")
        value = " ".join(value.split())
        for form in ("%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y"):
            try:
                return datetime.datetime.strptime(value, form).date().isoformat()
            except ValueError:
                continue
    except ValueError:
        pass
    return None


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """Find `quote` in `text` up to how a copied passage may differ from its source: whitespace,
    typographic quotes and dashes (`--` for `—`), `...` for `…`, dropped soft hyphens and zero-width
    characters, and composed or decomposed accents (NFC/NFD). Case and punctuation still count.

    Returns the (start, end) offsets in `text` of the article's own characters, or None.
    """
    folded, origin = _folded(text)
    needle = _fold(quote)[0].strip()
    at = folded.find(needle) if needle else -1
    while at != -1:
        end = at + len(needle)
        # The match must start and end on whole characters of `text` (not inside "é" or "…").
        if (at == 0 or origin[at - 1] != origin[at]) and (
            end == len(folded) or (origin[end] != origin[end - 1] and not unicodedata.combining(folded[end]))
        ):
            return origin[at], origin[end - 1] + 1
        at = folded.find(needle, at + 1)
    return None


@functools.lru_cache(maxsize=4)
def _folded(text: str) -> tuple[str, tuple[int, ...]]:
    """`_fold` of an article, kept: every quote of a brief is looked up in the same text."""
    return _fold(text)


def fold(text: str) -> str:
    """`text` folded as `locate` compares it (quotes, dashes, spaces, accents); case is kept."""
    return _fold(text)[0]


def _fold(text: str) -> tuple[str, tuple[int, ...]]:
    """`text` in matching form, and for each of its characters the index in `text` it comes from."""
    chars: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        if ch in _INVISIBLE:
            continue
        piece = " " if ch.isspace() else _FOLD.get(ch) or unicodedata.normalize("NFD", ch)
        for part in piece:
            if part in " -" and chars and chars[-1] == part:
                continue  # any run of whitespace, and "--" or "---" for a dash
            chars.append(part)
            origin.append(index)
    return "".join(chars), tuple(origin)


def grounding_problem(text: str, quote: str) -> str | None:
    """Why `quote` cannot ground a claim in `text`, or None when it can: it must be in the text and
    hold at least MIN_QUOTE_WORDS words (`count_words`) or a whole sentence ("the" or "." grounds nothing)."""
    span = locate(text, quote)
    if span is None:
        return "not found verbatim in the article"
    return (
        None
        if long_enough(text, *span)
        else (f"too short to ground a claim; quote at least {MIN_QUOTE_WORDS} words or a whole sentence")
    )


def long_enough(text: str, start: int, end: int) -> bool:
    """Whether the article's span start:end holds enough to ground a claim (see `grounding_problem`)."""
    span = text[start:end]
    if count_words(span) >= MIN_QUOTE_WORDS:
        return True
    return any(ch.isalnum() for ch in span) and _starts_sentence(text, start) and _ends_sentence(text, end)


def _starts_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip(_OPENERS)
    kept = before.rstrip()
    if not kept or "\n" in before[len(kept) :]:
        return True
    ended = kept.rstrip(_CLOSERS)[-1:]
    # After Western punctuation a space must follow ("U.S.A" is one word); CJK sets none.
    return bool(ended) and (ended in "。！？" or (ended in _SENTENCE_PUNCT and kept != before))


def _ends_sentence(text: str, end: int) -> bool:
    last = text[:end].rstrip(_CLOSERS)[-1:]
    after = text[end:].lstrip(_CLOSERS).lstrip(" \t")
    return (bool(last) and last in _SENTENCE_PUNCT) or not after or after[0] == "\n" or after[0] in _SENTENCE_PUNCT


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+|\n+")


def sentences(text: str, *, min_chars: int = 20) -> list[str]:
    """The article's sentences (and sentence-like lines), each an exact substring of `text`.

    Used as the only allowed quotes when a local server constrains decoding to a schema.
    """
    found: list[str] = []
    for raw_piece in _SENTENCE_END.split(text):
        piece = raw_piece.strip()
        if len(piece) >= min_chars and piece not in found:
            found.append(piece)
    return found
