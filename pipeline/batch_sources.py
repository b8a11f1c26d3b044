"""What a batch reads: files, folders, a list of paths and URLs, or a JSONL feed, one `Item` at a time.

Nothing is read until it is needed: `items` walks the sources lazily (a folder is listed, a list
or feed is read a line at a time), and an item's article is read only when `load_item` is called,
so memory stays flat however many sources there are. A source that cannot be read becomes that
item's failure, never the batch's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .article import Article, with_metadata
from .errors import InputError
from .fetch import FetchOptions

# A folder contributes its files with these endings (sorted by name); `sources.load` reads each one,
# and a format it cannot read is that item's failure with the reader's one-line error.
FOLDER_SUFFIXES = (".txt", ".md", ".html", ".htm", ".docx", ".pdf")
FEED_SUFFIX = ".jsonl"
FEED_INPUTS = ("text", "html", "url", "path")
FEED_METADATA = ("id", "title", "author", "date")


@dataclass(frozen=True)
class ReadOptions:
    """How each article is read: `counterpoint run`'s input options, for every article of the batch."""

    max_chars: int
    truncate: bool = False
    encoding: str | None = None
    fetch: FetchOptions | None = None


@dataclass(frozen=True)
class Item:
    """One source of a batch: its position (1-based), what to call it, and how to read it.

    `entry` is a feed line's object; `problem`, why a feed line cannot be an article.
    """

    n: int
    source: str
    id: str
    entry: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def key(self) -> str:
        """What a batch record knows the item by: the same sources give the same keys on resume."""
        return f"{self.n}:{self.source}"


def items(sources: Sequence[str], lists: Sequence[str] = (), base: str | None = None) -> Iterator[Item]:
    """Every item of the given sources (files, folders, URLs), then of each `--from` list or feed.

    A relative path in a list or feed is taken from `base` (the directory the batch was started
    in), so a resumed batch reads the same files wherever it is resumed from."""
    counter = iter(range(1, 1 << 62))
    for source in sources:
        for path in _expand(source):
            yield Item(next(counter), path, _name_of(path))
    for listing in lists:
        lines = _feed_lines(listing) if listing.endswith(FEED_SUFFIX) else _list_lines(listing)
        for line, entry, problem in lines:
            local = base is not None and problem is None and (entry is None or "path" in entry)
            source = _from(base, line) if local and base is not None else line
            item_id = entry.get("id") if entry and isinstance(entry.get("id"), str) else None
            yield Item(next(counter), source, item_id or _name_of(source), entry, problem)


def _expand(source: str) -> Iterator[str]:
    path = Path(source).expanduser()
    if path.is_dir():
        children = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
        yield from (str(child) for child in children)
    else:
        yield source  # a file, a URL, or a missing path (which fails as that item)


def _from(base: str, source: str) -> str:
    from .sources import is_url

    return source if is_url(source) else os.path.join(base, os.path.expanduser(source))


def _name_of(source: str) -> str:
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def _open_listing(listing: str) -> Any:
    try:
        return open(Path(listing).expanduser(), "rb")
    except OSError as exc:
        raise InputError(f"cannot read the list {listing} ({exc.strerror}); check the --from path") from None


def _listing_lines(listing: str) -> Iterator[tuple[int, str | None]]:
    """The list's lines by number, each decoded on its own: a line that is not UTF-8 is None (that
    line's item fails) instead of an error that would end the batch."""
    with _open_listing(listing) as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                yield number, None


def _not_utf8(source: str) -> str:
    return f"{source} is not UTF-8 text; save the list as UTF-8"


def _list_lines(listing: str) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """A list: one path or URL a line; blank lines and # comments are skipped."""
    for number, line in _listing_lines(listing):
        if line is None:
            yield f"{listing}:{number}", None, _not_utf8(f"{listing}:{number}")
            continue
        text = line.strip()
        if text and not text.startswith("#"):
            yield text, None, None


def _feed_lines(feed: str) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """A feed: one JSON object a line; a line that is not a usable object is an item that fails."""
    for number, line in _listing_lines(feed):
        source = f"{feed}:{number}"
        if line is None:
            yield source, None, _not_utf8(source)
            continue
        if not line.strip():
            continue
        entry, problem = _feed_entry(line, source)
        if entry is not None and problem is None:
            given = next(key for key in FEED_INPUTS if key in entry)
            if given in ("url", "path"):
                source = entry[given]
        yield source, entry, problem


def _feed_entry(line: str, source: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None, f"{source} is not a JSON object; give one object a line"
    if not isinstance(entry, dict):
        return None, f"{source} is not a JSON object; give one object a line"
    given = [key for key in FEED_INPUTS if key in entry]
    unknown = sorted(set(entry) - set(FEED_INPUTS) - set(FEED_METADATA))
    if len(given) != 1:
        return entry, f"{source} must hold exactly one of text, html, url or path (it has {len(given)})"
    if unknown:
        return (
            entry,
            f"{source} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FEED_INPUTS + FEED_METADATA)}",
        )
    wrong = [key for key in entry if not isinstance(entry[key], str)]
    if wrong:
        return entry, f"{source}: {wrong[0]} must be a string"
    return entry, None


def load_item(item: Item, options: ReadOptions) -> Article:
    """The item's article (an InputError or FetchError says why it cannot be read)."""
    from . import sources, web
    from .article import from_text

    if item.problem is not None:
        raise InputError(item.problem)
    entry = item.entry or {}
    common: dict[str, Any] = {"max_chars": options.max_chars, "truncate": options.truncate}
    if "text" in entry:
        article = from_text(entry["text"], item.source, **common)
    elif "html" in entry:
        article = web.from_html(entry["html"], item.source, **common)
    else:
        article = sources.load(item.source, encoding=options.encoding, fetch=options.fetch, **common)
    return with_metadata(article, title=entry.get("title"), author=entry.get("author"), date=entry.get("date"))
